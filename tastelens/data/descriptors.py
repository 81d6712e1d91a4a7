"""Item descriptors — the fine-grained words a catalog gives its items — and their index.

A *descriptor* is one keyword or tag of an item, normalised: casefolded, inner whitespace
collapsed, surrounding punctuation and quotes stripped ("Toy comes to life " and "toy comes
to life" are one descriptor). :func:`descriptors` is the one definition every part of
tastelens uses (profile mining, explanations, the learned ranker's features, the chat's
word look-up): the item's ``keywords`` (side information, a catalog's keywords and category
path parts) then its ``tags``, deduplicated in that order, without the item's own
categories (those are coarse, and the profile has them already).

:class:`DescriptorIndex` inverts that over a catalog: descriptor -> the items carrying it
and its document frequency, plus :meth:`DescriptorIndex.find` to map a word someone typed
("zombies", "twist-ending") onto the catalog's descriptors.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from tastelens.schemas import Item

FUNCTION_WORDS = frozenset("""
    a about above after again against all am an and any are aren't as at be because been
    before being below between both but by can can't cannot could couldn't did didn't do does
    doesn't doing don't down during each few for from further had hadn't has hasn't have
    haven't having he he'd he'll he's her here here's hers herself him himself his how how's i
    i'd i'll i'm i've if in into is isn't it it's its itself let's me more most mustn't my
    myself no nor not of off on once only or other ought our ours ourselves out over own same
    shan't she she'd she'll she's should shouldn't so some such than that that's the their
    theirs them themselves then there there's these they they'd they'll they're they've this
    those through to too under until up very was wasn't we we'd we'll we're we've were weren't
    what what's when when's where where's which while who who's whom why why's with won't
    would wouldn't you you'd you'll you're you've your yours yourself yourselves im ive id
    dont didnt doesnt isnt wasnt cant wont whats thats theres hows ya yeah yep yup nope nah
    oh ah um uh hmm haha lol ok okay alright well sure guess think know mean get got go going
    gonna wanna lately recently today tonight weekend day night week time times right now
    still even ever already pretty quite thing things way lot lots anyway actually
    """.split())
"""English function words and chat filler: a word among these never says what an item is
about (the chat's free text and the retriever's descriptor look-up skip them)."""
REQUEST_WORDS = frozenset("""
    something anything stuff kind sort type types like want looking look watch watching
    see read listen buy recommend recommendation recommendations suggest suggestion
    suggestions options ideas idea any good great best favorite favourite movie movies film
    films show shows item items product products book books please thanks
    """.split())
"""Words of a request ('recommend me a good movie'), not of what it asks for."""

MAX_DESCRIPTOR_CHARS = 60
"""Longer keywords or tags are sentences, not descriptors; they are left out."""
_SPACE = re.compile(r"\s+")
_EDGE = " \t\n\"'`.,;:!?()[]{}<>*#_-"
_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)?")


def normalise(text: str) -> str:
    """``"  Toy comes to Life!"`` -> ``"toy comes to life"``; ``""`` when nothing is left."""
    return _SPACE.sub(" ", text.casefold()).strip(_EDGE).strip()


def descriptors(item: Item) -> tuple[str, ...]:
    """The item's keywords then tags, normalised and deduplicated, without its categories."""
    skip = {normalise(c) for c in item.categories}
    out: dict[str, None] = {}
    for raw in (*item.keywords, *item.tags):
        key = normalise(raw)
        if key and key not in skip and len(key) <= MAX_DESCRIPTOR_CHARS:
            out.setdefault(key, None)
    return tuple(out)


def words(text: str) -> list[str]:
    """Lower-case word tokens of ``text`` (letters and digits; "don't" stays one word)."""
    return _WORD.findall(text.casefold())


def variants(word: str) -> list[str]:
    """``word`` and its simple English singular/plural forms: zombies -> zombie, zombie ->
    zombies, heroes -> hero, stories -> story (no stemmer: a descriptor must still exist)."""
    forms = [word]
    if word.endswith("ies") and len(word) > 4:
        forms.append(word[:-3] + "y")
    if word.endswith("es") and len(word) > 3:
        forms.append(word[:-2])
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        forms.append(word[:-1])
    if word.endswith("y") and len(word) > 2:
        forms.append(word[:-1] + "ies")
    forms.append(word + ("es" if word.endswith(("s", "x", "ch", "sh")) else "s"))
    return list(dict.fromkeys(forms))


@dataclass(frozen=True)
class DescriptorIndex:
    """Descriptor -> item ids over one catalog (catalog order), and document frequencies.

    Build it with :meth:`from_items` (or ``dataset.descriptor_index``, cached per dataset).
    """

    postings: Mapping[str, tuple[str, ...]]
    n_items: int
    """Items in the catalog (with or without descriptors): the base of :meth:`idf`."""
    by_item: Mapping[str, tuple[str, ...]] = field(repr=False)
    _by_word: Mapping[str, tuple[str, ...]] = field(repr=False)

    @classmethod
    def from_items(cls, items: Iterable[Item]) -> DescriptorIndex:
        postings: dict[str, list[str]] = {}
        by_item: dict[str, tuple[str, ...]] = {}
        n = 0
        for item in items:
            n += 1
            found = descriptors(item)
            if found:
                by_item[item.id] = found
            for d in found:
                postings.setdefault(d, []).append(item.id)
        by_word: dict[str, list[str]] = {}
        for d in postings:
            for w in dict.fromkeys(words(d)):
                by_word.setdefault(w, []).append(d)
        return cls(postings={d: tuple(ids) for d, ids in postings.items()}, n_items=n,
                   by_item=by_item, _by_word={w: tuple(ds) for w, ds in by_word.items()})

    def __len__(self) -> int:
        return len(self.postings)

    def __contains__(self, descriptor: object) -> bool:
        return isinstance(descriptor, str) and normalise(descriptor) in self.postings

    def items(self, descriptor: str) -> tuple[str, ...]:
        """Ids of the items carrying ``descriptor`` (normalised first), catalog order."""
        return self.postings.get(normalise(descriptor), ())

    def df(self, descriptor: str) -> int:
        """How many items carry ``descriptor``."""
        return len(self.items(descriptor))

    def idf(self, descriptor: str) -> float:
        """ln((1 + N) / (1 + df)) + 1: rare descriptors weigh more (0 never)."""
        return math.log((1 + self.n_items) / (1 + self.df(descriptor))) + 1.0

    def of(self, item_id: str) -> tuple[str, ...]:
        """The descriptors of one item (empty for an unknown id or an item without any)."""
        return self.by_item.get(item_id, ())

    @property
    def items_with_descriptors(self) -> int:
        return len(self.by_item)

    def vocabulary(self, min_df: int = 1) -> list[str]:
        """Descriptors carried by at least ``min_df`` items, most frequent first."""
        kept = [d for d, ids in self.postings.items() if len(ids) >= min_df]
        return sorted(kept, key=lambda d: (-len(self.postings[d]), d))

    def find(self, phrase: str) -> list[str]:
        """Descriptors that *are* ``phrase`` up to case, punctuation, hyphens and a plural
        ("Zombies" -> "zombie", "twist-ending" -> "twist ending"), most frequent first."""
        tokens = words(phrase)
        if not tokens:
            return []
        heads = [" ".join(tokens[:-1] + [form]) for form in variants(tokens[-1])]
        wanted = {normalise(phrase), " ".join(tokens), "-".join(tokens), *heads}
        found = [d for d in wanted if d in self.postings]
        return sorted(found, key=lambda d: (-len(self.postings[d]), d))

    def containing(self, word: str, limit: int | None = None) -> list[str]:
        """Descriptors that contain ``word`` (or its singular/plural) as a whole word, most
        frequent first: "zombie" -> "zombie", "zombie apocalypse", "nazi zombies" …"""
        found: dict[str, None] = {}
        for form in variants(normalise(word)):
            for d in self._by_word.get(form, ()):
                found.setdefault(d, None)
        ranked = sorted(found, key=lambda d: (-len(self.postings[d]), d))
        return ranked if limit is None else ranked[:limit]
