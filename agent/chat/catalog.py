"""What the chat knows about the catalog: titles to match, genre words, the year range.

:class:`CatalogVocabulary` is built once per dataset and answers the questions the chat's
rule parser asks:

- :meth:`~CatalogVocabulary.title_at` / :meth:`~CatalogVocabulary.match_title`: which item a
  piece of the user's message names ("Heat" -> "Heat (1995)"). Titles are indexed without the
  year suffix, with MovieLens' trailing article moved to the front ("Matrix, The" -> "the
  matrix") and once more without a leading article; alternate titles in parentheses
  ("Seven (a.k.a. Se7en)") are indexed too. Ties go to the most-rated item.
- :meth:`~CatalogVocabulary.category_at`: which catalog category a word names, through a
  synonym table ("funnier" -> Comedy, "scary" -> Horror); synonyms whose category the catalog
  does not have are never returned.
"""

from __future__ import annotations

import difflib
import re
import threading
import weakref
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from tastelens.data.dataset import Dataset
from tastelens.data.titles import LEADING_ARTICLE, article_first, strip_year

_PARENS = re.compile(r"\s*\(([^()]*)\)\s*$")
_NON_WORD = re.compile(r"[^\w\s'-]+")

# Words that name a genre, and the catalog category each stands for. Only categories present
# in the dataset are used; matching is on whole tokens (and two-word phrases).
GENRE_SYNONYMS: dict[str, str] = {
    **{w: "Comedy" for w in ("comedy", "comedies", "comedic", "funny", "funnier", "funniest",
                             "hilarious", "lighter", "lighthearted", "light-hearted", "laughs")},
    **{w: "Horror" for w in ("horror", "horrors", "scary", "scarier", "scariest", "spooky",
                             "creepy", "frightening", "terrifying", "gory", "slasher")},
    **{w: "Action" for w in ("action", "explosive", "explosions", "fights")},
    **{w: "Adventure" for w in ("adventure", "adventures", "adventurous", "quest")},
    **{w: "Animation" for w in ("animation", "animated", "cartoon", "cartoons", "anime")},
    **{w: "Children" for w in ("children", "children's", "kids", "kid", "family")},
    **{w: "Crime" for w in ("crime", "crimes", "gangster", "gangsters", "heist", "heists",
                            "mafia", "mob")},
    **{w: "Documentary" for w in ("documentary", "documentaries", "docs")},
    **{w: "Drama" for w in ("drama", "dramas", "dramatic", "serious")},
    **{w: "Fantasy" for w in ("fantasy", "magical", "magic", "fairy")},
    **{w: "Film-Noir" for w in ("noir", "film-noir")},
    **{w: "Musical" for w in ("musical", "musicals", "singing")},
    **{w: "Mystery" for w in ("mystery", "mysteries", "whodunit", "whodunnit", "detective")},
    **{w: "Romance" for w in ("romance", "romances", "romantic", "romcom", "rom-com")},
    **{w: "Sci-Fi" for w in ("sci-fi", "scifi", "sf", "futuristic", "aliens", "space")},
    **{w: "Thriller" for w in ("thriller", "thrillers", "thrilling", "suspense",
                               "suspenseful", "tense")},
    **{w: "War" for w in ("war", "wars", "wartime")},
    **{w: "Western" for w in ("western", "westerns", "cowboy", "cowboys")},
    **{w: "IMAX" for w in ("imax",)},
}
GENRE_PHRASES: dict[tuple[str, ...], str] = {
    ("science", "fiction"): "Sci-Fi", ("love", "story"): "Romance",
    ("love", "stories"): "Romance", ("film", "noir"): "Film-Noir", ("rom", "com"): "Romance",
    ("rom", "coms"): "Romance", ("sci", "fi"): "Sci-Fi",
    ("feel", "good"): "Comedy",
}
# Words too common to be a one-word title on their own ("something like it").
TITLE_STOPWORDS = frozenset({
    "it", "that", "this", "these", "those", "them", "one", "ones", "something", "anything",
    "me", "you", "him", "her", "us", "a", "an", "the", "more", "some", "any", "what", "movie",
    "movies", "film", "films", "stuff", "again", "too", "so", "please", "here",
    "there", "now", "then", "other", "others", "else", "much", "many", "good", "great",
})


def tokens(text: str) -> list[str]:
    """Lower-cased word tokens; '&' counts as 'and', other punctuation is dropped."""
    text = text.casefold().replace("&", " and ").replace("’", "'")
    return [t.strip("'-") for t in _NON_WORD.sub(" ", text).split() if t.strip("'-")]


def title_keys(title: str) -> tuple[list[str], list[str]]:
    """(primary, secondary) normalised forms of a catalog title: primary with the article in
    front, secondary without a leading article (lower priority: 'heat' is 'Heat (1995)' before
    it is 'Heat, The (2013)')."""
    base = strip_year(title)
    names = [base]
    while (alt := _PARENS.search(names[0])) is not None:  # "Seven (a.k.a. Se7en)"
        names[0] = names[0][: alt.start()].strip()
        names.append(re.sub(r"^(a\.k\.a\.|aka)\s+", "", alt.group(1).strip(), flags=re.I))
    primary: list[str] = []
    secondary: list[str] = []
    for name in names:
        moved = article_first(name)
        key = " ".join(tokens(moved))
        if not key:
            continue
        primary.append(key)
        stripped = LEADING_ARTICLE.sub("", key)
        if stripped != key:
            secondary.append(stripped)
    return primary, secondary


@dataclass(frozen=True)
class TitleMatch:
    """An item a span of the message names; ``exact`` False for a fuzzy (difflib) match."""

    item: str
    title: str
    start: int
    end: int
    exact: bool


class CatalogVocabulary:
    """Title and genre look-ups for one dataset (build once, reuse for every turn)."""

    def __init__(self, dataset: Dataset, *, max_title_tokens: int = 8) -> None:
        self.dataset = dataset
        self.max_title_tokens = max_title_tokens
        counts = Counter(dataset.interactions["item"].tolist())
        # Most-rated first, then newest: the order ties between equal titles resolve in.
        order = sorted(dataset.items.values(),
                       key=lambda it: (-counts.get(it.id, 0), -(it.year or 0), it.id))
        self._primary: dict[str, list[str]] = {}
        self._secondary: dict[str, list[str]] = {}
        for item in order:
            primary, secondary = title_keys(item.title)
            for key in primary:
                self._primary.setdefault(key, []).append(item.id)
            for key in secondary:
                self._secondary.setdefault(key, []).append(item.id)
        self._keys = sorted(set(self._primary) | set(self._secondary))
        self.categories = sorted({c for it in dataset.items.values() for c in it.categories
                                  if not c.startswith("(")})
        known = {c.casefold(): c for c in self.categories}
        self._genre_words: dict[str, str] = {c.casefold(): c for c in self.categories}
        self._genre_words.update({f"{c.casefold()}s": c for c in self.categories})
        for word, category in GENRE_SYNONYMS.items():
            if category.casefold() in known:
                self._genre_words.setdefault(word, known[category.casefold()])
        self._genre_phrases = {p: known[c.casefold()] for p, c in GENRE_PHRASES.items()
                               if c.casefold() in known}
        self._descriptors = dataset.descriptor_index
        years = [it.year for it in dataset.items.values() if it.year]
        self.min_year = min(years) if years else None
        self.max_year = max(years) if years else None

    # -- titles ---------------------------------------------------------------------------
    def lookup(self, key: str) -> str | None:
        """The item whose normalised title is exactly ``key`` (primary forms first)."""
        ids = self._primary.get(key) or self._secondary.get(key)
        return ids[0] if ids else None

    def lookup_year(self, key: str, year: int, slack: int = 1) -> str | None:
        """The item titled ``key`` released within ``slack`` years of ``year`` (the closest
        year first, then primary title forms, then the most-rated); None when there is none.
        An item without a year never matches: the year is what makes the span a title."""
        best: tuple[int, int, str] | None = None
        for rank, table in enumerate((self._primary, self._secondary)):
            for item in table.get(key, ()):
                known = self.dataset.items[item].year
                if known is None or abs(known - year) > slack:
                    continue
                cand = (abs(known - year), rank, item)
                if best is None or cand[:2] < best[:2]:
                    best = cand
        return best[2] if best else None

    def title_keys_of(self, item: str) -> list[str]:
        """The normalised forms an item's title is matched by (longest first)."""
        primary, secondary = title_keys(self.dataset.items[item].title)
        return sorted(set(primary + secondary), key=len, reverse=True)

    def title_at(self, toks: Sequence[str], start: int) -> TitleMatch | None:
        """The longest exact title starting at token ``start``; a lone stopword never counts."""
        stop = min(len(toks), start + self.max_title_tokens)
        for end in range(stop, start, -1):
            key = " ".join(toks[start:end])
            if end - start == 1 and key in TITLE_STOPWORDS:
                continue
            item = self.lookup(key)
            if item is not None:
                return TitleMatch(item, self.dataset.items[item].title, start, end, True)
        return None

    def match_title(self, text: str, *, cutoff: float) -> str | None:
        """The item ``text`` names: exact normalised match, else the closest title by difflib
        ratio ≥ ``cutoff`` (typos: 'toy stroy'). None when nothing is close enough."""
        key = " ".join(tokens(text))
        if not key or key in TITLE_STOPWORDS:
            return None
        exact = self.lookup(key) or self.lookup(LEADING_ARTICLE.sub("", key))
        if exact is not None:
            return exact
        close = difflib.get_close_matches(key, self._keys, n=1, cutoff=cutoff)
        return self.lookup(close[0]) if close else None

    def search(self, text: str, limit: int = 5) -> list[str]:
        """Items whose titles resemble ``text``: exact first, then difflib, then token overlap."""
        key = " ".join(tokens(text))
        if not key:
            return []
        found: list[str] = []
        for candidate in [key, *difflib.get_close_matches(key, self._keys, n=limit, cutoff=0.6)]:
            found += self._primary.get(candidate, []) + self._secondary.get(candidate, [])
        words = set(key.split()) - TITLE_STOPWORDS
        if words and len(dict.fromkeys(found)) < limit:
            overlap = [k for k in self._keys if words <= set(k.split())]
            for k in sorted(overlap, key=len)[: limit * 2]:
                found += self._primary.get(k, []) + self._secondary.get(k, [])
        return list(dict.fromkeys(found))[:limit]

    # -- descriptors ----------------------------------------------------------------------
    def describes(self, word: str) -> bool:
        """Whether the catalog describes items with ``word`` (or its singular/plural): a
        word of a descriptor (keyword, tag) that at least two items carry."""
        index = self._descriptors
        return any(index.df(d) >= 2 for d in index.containing(word, limit=8))

    # -- genres ---------------------------------------------------------------------------
    def category_at(self, toks: Sequence[str], start: int) -> tuple[str, int] | None:
        """(category, tokens used) when the words at ``start`` name a catalog category."""
        pair = tuple(toks[start:start + 2])
        if len(pair) == 2 and pair in self._genre_phrases:
            return self._genre_phrases[pair], 2
        category = self._genre_words.get(toks[start]) if start < len(toks) else None
        return (category, 1) if category else None

    def category(self, word: str) -> str | None:
        """The catalog category a word or short phrase names ('funnier' -> 'Comedy')."""
        toks = tokens(word)
        if not toks:
            return None
        hit = self.category_at(toks, 0)
        return hit[0] if hit and hit[1] == len(toks) else None

    def is_category_name(self, phrase: str) -> bool:
        """True for a bare category name or its plural ('comedies', 'Horror'): as a wish it
        would add nothing the category filter does not already say."""
        key = " ".join(tokens(phrase))
        names = {c.casefold() for c in self.categories}
        plural = key[:-3] + "y" if key.endswith("ies") else key[:-1] if key.endswith("s") else ""
        return key in names or plural in names


_CACHE: dict[int, tuple[weakref.ref, CatalogVocabulary]] = {}
_CACHE_LOCK = threading.Lock()


def vocabulary_for(dataset: Dataset) -> CatalogVocabulary:
    """One shared vocabulary per dataset object (the HTTP API opens many sessions on one)."""
    with _CACHE_LOCK:
        hit = _CACHE.get(id(dataset))
        if hit is not None and hit[0]() is dataset:
            return hit[1]
        vocab = CatalogVocabulary(dataset)
        key = id(dataset)
        _CACHE[key] = (weakref.ref(dataset, lambda _ref: _CACHE.pop(key, None)), vocab)
        return vocab
