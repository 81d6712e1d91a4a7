"""Train / validation / test splits for offline evaluation.

- ``leave_last_out(dataset)``: each user's events sorted by (timestamp, item id); the last
  event is the test target, the second-to-last the validation target, everything else is
  training data. Test histories include the validation event. Users with fewer than 3
  events are not evaluated (their events stay in ``train``) and are counted in
  ``Split.skipped["fewer than 3 interactions"]``. Every rating counts as an interaction.
- ``temporal(dataset, test_fraction, validation_fraction)``: two global time cuts at
  quantiles of all timestamps. A user with events before a cut gets one case for it: the
  target is their first event at or after the cut, the history everything before it (for
  the test cut that includes validation-period events). ``train`` is every event before
  the validation cut, so nothing from either evaluation period leaks into fitting.
- Dated tags (``Dataset.tag_events``) count only before the cut: ``split.dataset`` is the
  dataset whose items carry the tags written before each evaluated user's first held-out
  event (leave-last-out) or before the validation cut (temporal); evaluate with it, not
  with the dataset you passed in (:func:`tastelens.data.tags.tags_before`).
- ``masked_items(case)``: the catalog indices to exclude when ranking the full catalog for
  a case: every item in the history, never the target itself.

Histories hold catalog indices (``dataset.item_index``) and share read-only buffers, so
splitting ml-latest-small takes well under a second (numpy group-by, no per-row Python).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tastelens.data.dataset import Dataset, History
from tastelens.data.parsing import lookup
from tastelens.data.tags import tags_before
from tastelens.errors import ConfigError, DataFormatError, UnknownIdError

FEWER_THAN_3 = "fewer than 3 interactions"


@dataclass(frozen=True)
class EvalCase:
    """Predict ``target`` (catalog index) for ``history.user`` given ``history``.

    The mask -- the catalog indices excluded from full-catalog ranking -- is every item the
    user interacted with before the target (the target itself is never masked); compute it
    with :func:`masked_items`.
    """

    history: History
    target: int

    @property
    def user(self) -> str:
        return self.history.user


@dataclass(frozen=True)
class Split:
    """The result of a split: fit on ``train``, tune on ``validation``, report on ``test``."""

    name: str
    dataset: Dataset
    train: pd.DataFrame  # same columns as Dataset.interactions
    validation: list[EvalCase]
    test: list[EvalCase]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of users


@dataclass(frozen=True)
class _Events:
    """Every event sorted by (user, timestamp, item id), as parallel read-only arrays."""

    users: list[str]  # one per user group, in dataset.user_ids order
    starts: np.ndarray  # int64, first position of each user's events
    ends: np.ndarray  # int64, one past the last position
    items: np.ndarray  # int64 catalog indices
    ratings: np.ndarray  # float32
    timestamps: np.ndarray  # int64
    rows: np.ndarray  # int64 row positions in dataset.interactions

    def history(self, group: int, stop: int) -> History:
        start = self.starts[group]
        return History(user=self.users[group], items=self.items[start:stop],
                       ratings=self.ratings[start:stop], timestamps=self.timestamps[start:stop])


def _events(dataset: Dataset) -> _Events:
    frame = dataset.interactions
    items = lookup(dataset.item_ids, frame["item"])
    if (items < 0).any():
        bad = frame["item"].iloc[int(np.flatnonzero(items < 0)[0])]
        raise UnknownIdError(f"interaction item {bad!r} is not in the catalog of dataset "
                             f"{dataset.name!r}")
    user_ids = dataset.user_ids
    users = lookup(user_ids, frame["user"])
    # Tie-break by the item id *string*, as Dataset.user_events does; then by file row.
    id_rank = np.empty(len(dataset.item_ids), dtype=np.int64)
    id_rank[np.argsort(np.asarray(dataset.item_ids, dtype=object), kind="stable")] = \
        np.arange(len(id_rank))
    timestamps = frame["timestamp"].to_numpy(np.int64)
    order = _sort_order(users, timestamps, id_rank[items], len(user_ids), len(id_rank))
    sorted_users = users[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    ends = np.r_[starts[1:], len(order)]
    arrays = (items[order], frame["rating"].to_numpy(np.float32)[order], timestamps[order],
              order.astype(np.int64))
    for array in arrays:
        array.flags.writeable = False  # histories share these buffers
    return _Events([user_ids[u] for u in sorted_users[starts]], starts, ends, *arrays)


def _sort_order(users: np.ndarray, timestamps: np.ndarray, ranks: np.ndarray, n_users: int,
                n_items: int) -> np.ndarray:
    """Stable order by (user, timestamp, item rank); ties keep file order.

    One int64 composite key sorts ~2.5x faster than ``np.lexsort`` over three keys on 1M
    events; when the key could overflow we fall back to lexsort.
    """
    if len(users) == 0:
        return np.zeros(0, dtype=np.int64)
    low = int(timestamps.min())
    span = int(timestamps.max()) - low + 1
    if n_users * span * n_items < 2**62:
        key = (users * span + (timestamps - low)) * n_items + ranks
        return np.argsort(key, kind="stable")
    return np.lexsort((ranks, timestamps, users))


def _train(dataset: Dataset, events: _Events, keep: np.ndarray) -> pd.DataFrame:
    rows = np.sort(events.rows[keep])
    return dataset.interactions.iloc[rows].reset_index(drop=True)


def leave_last_out(dataset: Dataset) -> Split:
    """Last event = test, second-to-last = validation, the rest = train (see module doc)."""
    events = _events(dataset)
    lengths = events.ends - events.starts
    eligible = np.flatnonzero(lengths >= 3)
    validation = [EvalCase(events.history(g, events.ends[g] - 2),
                           int(events.items[events.ends[g] - 2])) for g in eligible]
    test = [EvalCase(events.history(g, events.ends[g] - 1),
                     int(events.items[events.ends[g] - 1])) for g in eligible]
    keep = np.ones(len(events.items), dtype=bool)
    keep[events.ends[eligible] - 1] = False
    keep[events.ends[eligible] - 2] = False
    # Each evaluated user's tags count up to (not including) their first held-out event.
    cuts = {events.users[g]: int(events.timestamps[events.ends[g] - 2]) for g in eligible}
    dataset = tags_before(dataset, cuts)
    return Split(name="leave-last-out", dataset=dataset, train=_train(dataset, events, keep),
                 validation=validation, test=test,
                 skipped={FEWER_THAN_3: int((lengths < 3).sum())})


def temporal_cuts(dataset: Dataset, test_fraction: float = 0.1,
                  validation_fraction: float = 0.1) -> tuple[int, int]:
    """(validation cut, test cut): events with ``timestamp >= cut`` fall after it."""
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1 \
            or test_fraction + validation_fraction >= 1:
        raise ConfigError(f"temporal split: need 0 < test_fraction, 0 <= validation_fraction "
                          f"and test_fraction + validation_fraction < 1; got {test_fraction} "
                          f"and {validation_fraction}")
    timestamps = dataset.interactions["timestamp"].to_numpy(np.int64)
    missing = int((timestamps < 0).sum())
    if missing:
        raise DataFormatError(dataset.source or dataset.name,
                              f"a temporal split needs a timestamp on every interaction; "
                              f"{missing} of {len(timestamps)} have none", field="timestamp")
    test_cut = int(np.quantile(timestamps, 1 - test_fraction, method="higher"))
    if validation_fraction == 0:
        return test_cut, test_cut
    val_cut = int(np.quantile(timestamps, 1 - test_fraction - validation_fraction,
                              method="higher"))
    return val_cut, test_cut


def temporal(dataset: Dataset, test_fraction: float = 0.1,
             validation_fraction: float = 0.1) -> Split:
    """Global time cuts at quantiles; one case per user and period (see module doc)."""
    val_cut, test_cut = temporal_cuts(dataset, test_fraction, validation_fraction)
    events = _events(dataset)
    group = np.repeat(np.arange(len(events.starts)), events.ends - events.starts)
    n_groups = len(events.starts)
    # Each user's events are time-sorted, so "before the cut" is a prefix of the group.
    before_val = np.bincount(group, weights=events.timestamps < val_cut,
                             minlength=n_groups).astype(np.int64)
    before_test = np.bincount(group, weights=events.timestamps < test_cut,
                              minlength=n_groups).astype(np.int64)
    lengths = events.ends - events.starts
    has_val_event = before_test > before_val  # an event in [val_cut, test_cut)
    has_test_event = lengths > before_test
    validation = [EvalCase(events.history(g, events.starts[g] + before_val[g]),
                           int(events.items[events.starts[g] + before_val[g]]))
                  for g in np.flatnonzero(has_val_event & (before_val > 0))]
    test = [EvalCase(events.history(g, events.starts[g] + before_test[g]),
                     int(events.items[events.starts[g] + before_test[g]]))
            for g in np.flatnonzero(has_test_event & (before_test > 0))]
    if not test:
        raise ConfigError(f"temporal split of {dataset.name!r} at test_fraction={test_fraction} "
                          "gives no test case: no user has events on both sides of the cut")
    skipped = {"validation: no history before the cut": int((has_val_event
                                                            & (before_val == 0)).sum()),
               "test: no history before the cut": int((has_test_event
                                                      & (before_test == 0)).sum())}
    return Split(name="temporal", dataset=tags_before(dataset, val_cut),
                 train=_train(dataset, events, events.timestamps < val_cut),
                 validation=validation, test=test, skipped=skipped)


def masked_items(case: EvalCase) -> np.ndarray:
    """Catalog indices to exclude from full-catalog ranking: the history, minus the target."""
    seen = np.unique(case.history.items)
    return seen[seen != case.target]
