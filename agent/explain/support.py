"""Is a claim true of the item? The check every reason passes before it is stated.

A claim's label — a profile interest ("1990s Drama", "heist", "slow-burn heist thrillers"), a
free-text request, an exploration idea — is split into parts, and each part needs support in
the item's own data:

- **categories** it names ("Drama"; "thrillers" → Thriller; case, hyphens and plurals
  ignored): the item must carry every one;
- **decades** it names ("1990s", "90s", "'90s"): the item's year must fall in one of them
  (an item without a year supports no decade);
- **the words left** ("heist", "slow-burn"; stop words such as "movies" dropped): every one
  appears in the item's keywords, tags, categories or description (lightly stemmed: "heists" ~
  "heist", "romantic" ~ "romance"), or else the embedding of those words and the item's text
  vector have cosine ≥ ``interest_min_similarity``.

A label that names no category, no decade and no content word is never supported. The
threshold is a measured value for the default encoder (``bench/explain_thresholds.py``;
bench/results/explain-thresholds.md). A catalog without categories (generic data) simply has
no category part: its claims rest on tags, description and text similarity.

:func:`claimed_parts` also reads the categories and decades a free text mentions, which is how
a model-written sentence is checked against the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from tastelens.schemas import Item

_TOKEN = re.compile(r"[a-z0-9]+")
_DECADE = re.compile(r"(?<![\w'])(?:(1[89]|20)([0-9])0|'?([0-9])0)['’]?s\b")
_YEAR = re.compile(r"\b(1[89][0-9]{2}|20[0-9]{2})\b")
STOP_WORDS = frozenset("""
a an and or of the in on at to for with from by about like into as its it is that this
movie movies film films flick flicks cinema genre genres kind type more some any all s
something anything ones one me i my you your want wants looking please just really very but
""".split())
"""Words that carry no claim about an item ("movies", "with"). Words of judgement ("good",
"classic") do: "good dialogue" is not supported by a tag "bad dialogue"."""


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.casefold())


def same_word(a: str, b: str) -> bool:
    """Equal, or sharing a prefix of ≥ 5 letters covering ≥ 70 % of the shorter word
    ("heist"/"heists", "romantic"/"romance", "thrill"/"thriller"); a poor man's stemmer."""
    if a == b:
        return True
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n >= 5 and n >= 0.7 * min(len(a), len(b))


def _plural_forms(word: str) -> set[str]:
    forms = {word, word + "s", word + "es"}
    if word.endswith("y"):
        forms.add(word[:-1] + "ies")
    return forms


@dataclass(frozen=True)
class Parts:
    """What a label names: catalog categories, decades (start years) and other words."""

    categories: tuple[str, ...] = ()
    decades: tuple[int, ...] = ()
    words: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.categories or self.decades or self.words)


class CategoryReader:
    """Finds the catalog categories a text names, as whole words (case, hyphens, plurals
    ignored: 'Sci-Fi' in "sci fi classics", 'Comedy' in "dark comedies")."""

    def __init__(self, categories: Iterable[str]) -> None:
        self._forms: list[tuple[str, tuple[str, ...], set[str]]] = []
        for category in sorted(set(categories), key=lambda c: -len(tokens(c))):
            words = tokens(category)
            if not words or category.startswith("("):  # "(no genres listed)"
                continue
            self._forms.append((category, tuple(words[:-1]), _plural_forms(words[-1])))

    def find(self, words: list[str]) -> tuple[list[str], list[bool]]:
        """(categories named, per-word flag 'used by a category') for a tokenised text."""
        used = [False] * len(words)
        found: list[str] = []
        for category, head, last in self._forms:
            n = len(head) + 1
            for start in range(len(words) - n + 1):
                window = words[start:start + n]
                if any(used[start:start + n]):
                    continue
                if tuple(window[:-1]) == head and window[-1] in last:
                    found.append(category)
                    used[start:start + n] = [True] * n
        return list(dict.fromkeys(found)), used


def claimed_parts(text: str, categories: CategoryReader) -> Parts:
    """Split a label into the categories, decades and content words it names."""
    folded = text.casefold()
    decades = []
    for m in _DECADE.finditer(folded):
        if m.group(1):
            decades.append(int(m.group(1) + m.group(2) + "0"))
        else:  # "90s": the 1900s unless it reads as this century's ("00s", "10s", "20s")
            d = int(m.group(3))
            decades.append(2000 + 10 * d if d <= 2 else 1900 + 10 * d)
    rest = _DECADE.sub(" ", folded)
    words = tokens(rest)
    named, used = categories.find(words)
    content = [w for w, u in zip(words, used) if not u and w not in STOP_WORDS
               and not w.isdigit()]
    return Parts(tuple(named), tuple(dict.fromkeys(decades)), tuple(dict.fromkeys(content)))


def mentioned_years(text: str) -> list[int]:
    """Four-digit years a text names ("from 1995")."""
    return [int(y) for y in _YEAR.findall(text)]


@dataclass
class Support:
    """The outcome of one check: supported or not, and what in the item's data decided."""

    ok: bool
    basis: str = ""
    similarity: float | None = field(default=None, compare=False)


class SupportChecker:
    """Checks labels against items; see the module docstring for the rules.

    ``vectors`` gives unit text vectors of items and of texts (None: the word rules only);
    ``min_similarity`` is the cosine above which an item's text supports the remaining words.
    """

    def __init__(self, categories: CategoryReader, min_similarity: float) -> None:
        self.categories = categories
        self.min_similarity = min_similarity

    def parts(self, label: str) -> Parts:
        return claimed_parts(label, self.categories)

    def check(self, label: str, item: Item, item_vector: np.ndarray | None = None,
              text_vector: np.ndarray | None = None) -> Support:
        """Whether ``item`` supports ``label``. ``text_vector`` is the embedding of
        :meth:`residual_text` of the label (needed only when words remain)."""
        parts = self.parts(label)
        if parts.empty:
            return Support(False, "names nothing checkable")
        basis: list[str] = []
        have = {c.casefold() for c in item.categories}
        missing = [c for c in parts.categories if c.casefold() not in have]
        if missing:
            return Support(False, f"not {', '.join(missing)}")
        basis += [f"category {c}" for c in parts.categories]
        if parts.decades:
            if item.year is None:
                return Support(False, "year unknown")
            if not any(d <= item.year < d + 10 for d in parts.decades):
                return Support(False, f"year {item.year}")
            basis.append(f"year {item.year}")
        if parts.words:
            found = word_support(parts.words, item)
            if found is not None:
                basis.append(found)
            else:
                sim = _cosine(item_vector, text_vector)
                if sim is None or sim < self.min_similarity:
                    shown = "no vector" if sim is None else f"text similarity {sim:.2f}"
                    return Support(False, f"{' '.join(parts.words)!r}: {shown}", sim)
                basis.append(f"text similarity {sim:.2f}")
                return Support(True, "; ".join(basis), sim)
        return Support(True, "; ".join(basis))

    def residual_text(self, label: str) -> str | None:
        """The words a text-similarity check embeds for ``label`` (None: none needed)."""
        words = self.parts(label).words
        return " ".join(words) if words else None


def word_support(words: Sequence[str], item: Item) -> str | None:
    """"keyword 'heist'" / "tag 'heist'" / 'its text' when every word appears in the item's
    keywords, tags, categories or description; None otherwise."""
    named = [("keyword", k, tokens(k)) for k in item.keywords]
    named += [("tag", tag, tokens(tag)) for tag in item.tags]
    own = set(tokens(" ".join(item.categories))) | set(tokens(item.text or ""))
    used: list[tuple[str, str]] = []
    for word in words:
        hit = next(((kind, t) for kind, t, ws in named
                    if any(same_word(word, w) for w in ws)), None)
        if hit is not None:
            used.append(hit)
        elif not any(same_word(word, w) for w in own):
            return None
    if used:
        parts = []
        for kind in ("keyword", "tag"):
            found = list(dict.fromkeys(t for k, t in used if k == kind))
            if found:
                parts.append(f"{kind} " + ", ".join(repr(t) for t in found))
        return "; ".join(parts)
    return "its text"


def _cosine(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return float(np.dot(a, b))
