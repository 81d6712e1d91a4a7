"""Movies named in dialogues -> catalog items, with the chat's own title keys.

A mention is written "Title (Year)" (ReDial's ``movieMentions``, the generic format's
``items``) or, in the generic format, may be a catalog id. It is matched in this order:

1. a catalog id (generic format only): that item;
2. the title's normalised keys (:func:`~tastelens.agent.chat.catalog.title_keys`: the
   article moved to the front — MovieLens writes "Matrix, The (1999)" —, whitespace and
   punctuation collapsed, each alternate title of "Seven (a.k.a. Se7en)" a key of its own)
   looked up with :meth:`~tastelens.agent.chat.catalog.CatalogVocabulary.lookup_year` at
   the exact year;
3. the same keys one year off, when that names a single item (the year before and the year
   after naming two different films is ambiguous: no match);
4. a title written without a year: the item when exactly one catalog title has that key.

Everything else is unmatched. :class:`MatchStats` counts each outcome.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

from tastelens.agent.chat.catalog import CatalogVocabulary, title_keys, vocabulary_for
from tastelens.data.dataset import Dataset

How = Literal["id", "exact", "year-off-by-one", "no-year", "ambiguous", "unmatched"]
MATCHED: tuple[How, ...] = ("id", "exact", "year-off-by-one", "no-year")

_YEAR = re.compile(r"\(\s*((?:1[89]|20)\d\d)\s*\)\s*$")


@dataclass(frozen=True)
class Match:
    """What a mention named: ``item`` (None when unmatched) and how it was found."""

    item: str | None
    how: How


@dataclass
class MatchStats:
    """Outcomes over distinct mention strings (``titles``) and over every mention in a turn
    (``mentions``); ``unmatched`` keeps a few unmatched strings to show in the report."""

    titles: Counter = field(default_factory=Counter)
    mentions: Counter = field(default_factory=Counter)
    unmatched: list[str] = field(default_factory=list)
    keep: int = 20

    def rate(self, counts: Counter) -> float:
        total = sum(counts.values())
        return round(sum(counts[h] for h in MATCHED) / total, 4) if total else 0.0

    def as_dict(self) -> dict:
        return {"titles": {"n": sum(self.titles.values()), "rate": self.rate(self.titles),
                           **{h: self.titles[h] for h in (*MATCHED, "ambiguous", "unmatched")}},
                "mentions": {"n": sum(self.mentions.values()),
                             "rate": self.rate(self.mentions),
                             **{h: self.mentions[h]
                                for h in (*MATCHED, "ambiguous", "unmatched")}},
                "unmatched_examples": list(self.unmatched)}


class MentionMatcher:
    """Matches mention strings to one dataset's items (results cached per string)."""

    def __init__(self, dataset: Dataset, vocab: CatalogVocabulary | None = None) -> None:
        self.dataset = dataset
        self.vocab = vocab or vocabulary_for(dataset)
        # How many items share each key: a title without a year is matched only when unique.
        self._key_counts: Counter = Counter()
        for item in dataset.items.values():
            primary, secondary = title_keys(item.title)
            for key in set(primary + secondary):
                self._key_counts[key] += 1
        self._cache: dict[tuple[str, bool], Match] = {}
        self.stats = MatchStats()

    def match(self, text: str, *, ids: bool = False) -> Match:
        """The item ``text`` names; ``ids``: a catalog id counts too (generic format)."""
        hit = self._cache.get((text, ids))
        if hit is None:
            hit = self._match(text, ids)
            self._cache[(text, ids)] = hit
            self.stats.titles[hit.how] += 1
            if hit.item is None and len(self.stats.unmatched) < self.stats.keep:
                self.stats.unmatched.append(text)
        return hit

    def count_mention(self, match: Match) -> None:
        """Count one mention occurrence (a turn naming a movie)."""
        self.stats.mentions[match.how] += 1

    def _match(self, text: str, ids: bool) -> Match:
        text = " ".join(text.split())
        if ids and text in self.dataset.items:
            return Match(text, "id")
        primary, secondary = title_keys(text)
        keys = list(dict.fromkeys(primary + secondary))
        if not keys:
            return Match(None, "unmatched")
        year_m = _YEAR.search(text)
        if year_m is None:
            unique = [k for k in keys if self._key_counts.get(k) == 1]
            item = self.vocab.lookup(unique[0]) if unique else None
            if item is not None:
                return Match(item, "no-year")
            named = any(self._key_counts.get(k) for k in keys)
            return Match(None, "ambiguous" if named else "unmatched")
        year = int(year_m.group(1))
        for key in keys:
            item = self.vocab.lookup_year(key, year, 0)
            if item is not None:
                return Match(item, "exact")
        ambiguous = False
        for key in keys:
            near = {self.vocab.lookup_year(key, year + d, 0) for d in (-1, 1)} - {None}
            if len(near) == 1:
                return Match(near.pop(), "year-off-by-one")
            ambiguous = ambiguous or len(near) > 1
        return Match(None, "ambiguous" if ambiguous else "unmatched")
