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

:class:`DecayedPopularity` is popularity *at a moment*: every event before it, halved per
half-life of age. The retriever's interest queries weigh it against similarity
(``retriever.popularity_half_life_days``), at each request's moment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

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


_DAY = 86_400.0
_CHECKPOINTS = 64  # saved count vectors: a moment's counts start from the one before it
_CHECKPOINT_BYTES = 64 << 20  # ... fewer on a huge catalog: their memory stays under this


class DecayedPopularity:
    """How much each item is being watched *at a moment*: its events at or before the
    moment, each weighted by ``2 ** -(age / half_life)``.

    All-time counts rank a film that was everywhere fifteen years before the request above
    what people watch at the request's moment; on a catalog whose events span years (a
    replayed evaluation, a store's history) the decayed count is the better prior. Events
    without a timestamp are left out (a catalog without timestamps has no moment: use
    :class:`PopularityPrior`'s counts).

    :meth:`at` costs one catalog-sized vector plus the events since the nearest of up to
    ``_CHECKPOINTS`` saved vectors (exact: the decay of a sum is the sum of the decays; at
    most ``_CHECKPOINT_BYTES`` of them), so a catalog of millions of events answers a moment
    in milliseconds.
    """

    def __init__(self, items: np.ndarray, times: np.ndarray, n_items: int,
                 half_life_days: float) -> None:
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be positive, got {half_life_days}")
        order = np.argsort(times, kind="stable")
        self.items = np.asarray(items, dtype=np.int64)[order]
        self.times = np.asarray(times, dtype=np.float64)[order]
        self.n_items = n_items
        self.half_life = half_life_days * _DAY
        marks = max(1, min(_CHECKPOINTS, _CHECKPOINT_BYTES // (8 * max(n_items, 1))))
        step = max(1, -(-len(self.times) // marks))
        self._marks = np.arange(0, len(self.times), step)  # event positions of checkpoints
        # The decayed counts of the events before each mark, as of the mark's event time.
        self._saved = np.zeros((len(self._marks), n_items))
        counts, now = np.zeros(n_items), self.times[0] if len(self.times) else 0.0
        for k, start in enumerate(self._marks):
            moment = self.times[start]
            counts = counts * self._decay(moment - now) + self._window(
                self._marks[k - 1] if k else 0, start, moment)
            self._saved[k], now = counts, moment

    @classmethod
    def from_events(cls, events: pd.DataFrame, dataset: Dataset,
                    half_life_days: float) -> DecayedPopularity:
        """From an interactions frame (columns item, timestamp; untimed rows are -1/NaN)."""
        times = pd.to_numeric(events["timestamp"], errors="coerce").to_numpy(np.float64)
        timed = np.isfinite(times) & (times >= 0)
        items = events["item"].map(dataset.item_index).to_numpy()
        known = timed & pd.notna(items)
        return cls(items[known].astype(np.int64), times[known], dataset.n_items,
                   half_life_days)

    def _decay(self, age: np.ndarray | float) -> np.ndarray | float:
        return np.exp2(-np.asarray(age, dtype=np.float64) / self.half_life)

    def _window(self, lo: int, hi: int, moment: float) -> np.ndarray:
        """Decayed counts of the events at positions lo..hi-1 as of ``moment``."""
        return np.bincount(self.items[lo:hi], weights=self._decay(moment - self.times[lo:hi]),
                           minlength=self.n_items)

    def at(self, moment: float) -> np.ndarray:
        """Every catalog item's decayed event count at ``moment`` (events after it do not
        count; all zeros before the first event)."""
        hi = int(np.searchsorted(self.times, moment, side="right"))
        k = int(np.searchsorted(self._marks, hi, side="left")) - 1  # a mark before hi
        if k < 0:
            return np.zeros(self.n_items)
        start = int(self._marks[k])
        return (self._saved[k] * self._decay(moment - self.times[start])
                + self._window(start, hi, moment))
