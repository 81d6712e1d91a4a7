"""What the stages share about a user's history and the catalog's categories (one module,
so that no stage imports another's internals for them):

- a user's events as chronological entries with their items (:func:`load_entries`; an empty
  history is :class:`EmptyHistoryError`), and the hash a job and the pipeline use to detect a
  changed history (:func:`history_hash`), and the moment a request over it is answered at
  (:func:`request_moment`);
- how often categories appear together on catalog items (:class:`CategoryCooccurrence`), and
  the "explore next" categories it suggests for a history's category weights
  (:func:`explore_fallback`): the profile's fallback ideas and the retriever's explore rule.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence

import numpy as np

from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import TastelensError
from tastelens.prompts.selection import HistoryEntry
from tastelens.schemas import CategoryPreference, Interaction


class EmptyHistoryError(TastelensError):
    """A profile was asked for a user whose history holds no events."""


def load_entries(dataset: Dataset, user: str,
                 history: Sequence[Interaction] | None = None) -> list[HistoryEntry]:
    """The user's events (or the given ``history``) as chronological entries with items."""
    if history is None:
        frame = dataset.user_events(user)  # UnknownIdError names the user and the dataset
        rows = [(r.item, None if math.isnan(r.rating) else float(r.rating),
                 None if r.timestamp < 0 else int(r.timestamp))
                for r in frame.itertuples(index=False)]
    else:
        # The dataset's own order (timestamp, then item id), so the hash does not depend on
        # how the caller happened to order ties.
        ordered = sorted(history, key=lambda e: (-1 if e.timestamp is None else e.timestamp,
                                                 e.item))
        rows = [(e.item, e.rating, e.timestamp) for e in ordered]
    if not rows:
        raise EmptyHistoryError(
            f"user {user!r} has an empty history in dataset {dataset.name!r}: a profile needs "
            "at least one rated or watched item")
    return [HistoryEntry(item=dataset.item(item), rating=rating, timestamp=ts)
            for item, rating, ts in rows]


def history_hash(entries: Sequence[HistoryEntry]) -> str:
    """sha256 over the chronological (item id, rating, timestamp) events."""
    digest = hashlib.sha256()
    for e in entries:
        rating = "" if e.rating is None else repr(float(e.rating))
        stamp = "" if e.timestamp is None else str(int(e.timestamp))
        digest.update(f"{e.item.id}\t{rating}\t{stamp}\n".encode())
    return digest.hexdigest()


def request_moment(history: Sequence[Interaction]) -> float | None:
    """The newest timestamp of a history (Unix seconds; None without timed events): the
    moment a request over it is answered at — the retriever's decayed popularity prior and
    the learned ranker's item features count only what happened by then."""
    times = [e.timestamp for e in history if e.timestamp is not None]
    return float(max(times)) if times else None


class CategoryCooccurrence:
    """How often categories appear together on catalog items: P(d | c) and catalog shares."""

    def __init__(self, items: Sequence[Sequence[str]], ignore: Sequence[str] = ()) -> None:
        names = sorted({c for cats in items for c in cats if c not in ignore})
        self.names = names
        self.index = {c: j for j, c in enumerate(names)}
        self.counts = np.zeros((len(names), len(names)))
        for cats in items:
            js = sorted({self.index[c] for c in cats if c in self.index})
            for a in js:
                for b in js:
                    self.counts[a, b] += 1
        diagonal = np.diag(self.counts).copy()
        self.totals = diagonal
        self.share = diagonal / diagonal.sum() if diagonal.sum() > 0 else diagonal

    @classmethod
    def from_dataset(cls, dataset: Dataset, config: ProfileFactsConfig) -> CategoryCooccurrence:
        return cls([it.categories for it in dataset.items.values()], config.ignore_categories)

    def conditional(self, category: str) -> np.ndarray:
        """P(d | c) over all categories d (zero row for an unknown c)."""
        j = self.index.get(category)
        if j is None or self.totals[j] == 0:
            return np.zeros(len(self.names))
        return self.counts[j] / self.totals[j]


def explore_fallback(prefs: Sequence[CategoryPreference], cooc: CategoryCooccurrence,
                     n: int = 3, top_k: int = 3) -> list[str]:
    """Categories the user's top ones co-occur with in the catalog, but that are
    under-represented in the history:

        score(d) = Σ_{c ∈ top_k} w_c · P(d | c) / Σ_{c ∈ top_k} w_c  −  w_d

    (w = the user's category weights). When co-occurrence suggests fewer than ``n``
    (single-category catalogs), the rest is filled by catalog share − user share.
    """
    if not prefs or n <= 0:
        return []
    weights = {p.category: p.weight for p in prefs}
    top = [p for p in prefs[:top_k] if p.category in cooc.index]
    expected = np.zeros(len(cooc.names))
    total = sum(p.weight for p in top)
    for p in top:
        expected += p.weight * cooc.conditional(p.category)
    if total > 0:
        expected /= total
    skip = {p.category for p in top}
    scored = [(float(expected[j]) - weights.get(c, 0.0), c) for j, c in enumerate(cooc.names)
              if c not in skip and expected[j] > 0]
    picks = [c for s, c in sorted(scored, key=lambda t: (-t[0], t[1])) if s > 0][:n]
    if len(picks) < n:
        backup = [(float(cooc.share[j]) - weights.get(c, 0.0), c)
                  for j, c in enumerate(cooc.names) if c not in skip and c not in picks]
        picks += [c for s, c in sorted(backup, key=lambda t: (-t[0], t[1])) if s > 0][
            : n - len(picks)]
    return picks
