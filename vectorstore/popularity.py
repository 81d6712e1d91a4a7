"""What people actually watch: a popularity prior over the catalog.

The prior of item *i* is

    prior(i) = log(1 + n_i) − freshness · (newest − year_i) / 10

where ``n_i`` is how many of the fitted sequences hold *i* (the same interactions the
collaborative models were fitted on, so an evaluation never counts a held-out event),
``newest`` is the catalog's newest release year and ``year_i`` the item's (the catalog's
median year when unknown; without any years the second term is 0). ``freshness`` is the
log-popularity a decade of age costs: 0 is plain popularity.

It answers three needs of a request that says little: a new visitor's first list ("well-liked
picks"), the candidates of a stated genre with nobody's history to go on, and a prior the
learned ranker can weigh against the other sources (the ``prior`` rank feature).
:meth:`PopularityPrior.top` walks the items in prior order and keeps the first ``n`` a
filter allows — no index, no fetch size to guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from tastelens.data.dataset import Dataset


class PopularityPrior:
    """Item counts from fitted sequences, scored with a freshness term (module docstring)."""

    def __init__(self, counts: np.ndarray, years: np.ndarray) -> None:
        self.counts = counts.astype(np.float64)
        self.years = years.astype(np.float64)
        known = self.years[np.isfinite(self.years)]
        self.newest = float(known.max()) if len(known) else None
        self._median = float(np.median(known)) if len(known) else None
        self._orders: dict[float, np.ndarray] = {}

    @classmethod
    def fit(cls, sequences: Sequence[np.ndarray], dataset: Dataset) -> PopularityPrior:
        """Counts of the items each sequence holds (an item counts once per sequence)."""
        counts = np.zeros(dataset.n_items, dtype=np.float64)
        for seq in sequences:
            if len(seq):
                counts[np.unique(np.asarray(seq, dtype=np.int64))] += 1
        years = np.array([np.nan if it.year is None else float(it.year)
                          for it in dataset.items.values()])
        return cls(counts, years)

    def scores(self, freshness: float = 0.0) -> np.ndarray:
        """The prior of every catalog item (higher first)."""
        base = np.log1p(self.counts)
        if freshness == 0.0 or self.newest is None:
            return base
        years = np.where(np.isfinite(self.years), self.years, self._median)
        return base - freshness * (self.newest - years) / 10.0

    def order(self, freshness: float = 0.0) -> np.ndarray:
        """Catalog indices by descending prior (ties: most counted, then catalog order);
        cached per freshness."""
        key = float(freshness)
        found = self._orders.get(key)
        if found is None:
            found = np.lexsort((np.arange(len(self.counts)), -self.counts,
                                -self.scores(key)))
            self._orders[key] = found
        return found

    def top(self, n: int, allowed: Callable[[int], bool], freshness: float = 0.0,
            ) -> list[int]:
        """The first ``n`` catalog indices in prior order that ``allowed`` keeps (items
        nobody interacted with never count: a prior of nothing is not a recommendation)."""
        out: list[int] = []
        for i in self.order(freshness):
            if self.counts[i] > 0 and allowed(int(i)):
                out.append(int(i))
                if len(out) >= n:
                    break
        return out
