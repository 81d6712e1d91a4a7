"""leave_last_out, temporal and masked_items on hand-built and synthetic datasets."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastelens.data import Dataset, leave_last_out, masked_items, temporal, temporal_cuts
from tastelens.errors import ConfigError, DataFormatError, UnknownIdError
from tastelens.schemas import Item


def _dataset(rows: list[tuple[str, str, float, int]], n_items: int = 12) -> Dataset:
    items = {str(i): Item(id=str(i), title=f"Movie {i}") for i in range(1, n_items + 1)}
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).astype(
        {"rating": "float64", "timestamp": "int64"})
    return Dataset(name="hand", items=items, interactions=frame)


ROWS = [
    # user a: file order is not time order; items 10 and 9 tie at t=30 (id "10" < "9")
    ("a", "5", 4.0, 50), ("a", "1", 3.0, 10), ("a", "9", 2.0, 30), ("a", "10", 5.0, 30),
    ("a", "2", 1.0, 20),
    ("b", "3", 4.0, 5), ("b", "4", 4.0, 6),  # only two events: skipped
    ("c", "6", 4.0, 1), ("c", "7", 4.0, 2), ("c", "6", 2.0, 3),  # re-watches item 6 last
]


def test_leave_last_out_on_hand_built_data() -> None:
    ds = _dataset(ROWS)
    split = leave_last_out(ds)
    idx = ds.item_index
    assert split.skipped == {"fewer than 3 interactions": 1}
    assert [c.user for c in split.test] == ["a", "c"] == [c.user for c in split.validation]
    test_a, val_a = split.test[0], split.validation[0]
    assert test_a.target == idx["5"] and val_a.target == idx["9"]
    assert test_a.history.items.tolist() == [idx["1"], idx["2"], idx["10"], idx["9"]]
    assert test_a.history.timestamps.tolist() == [10, 20, 30, 30]
    assert val_a.history.items.tolist() == [idx["1"], idx["2"], idx["10"]]
    assert test_a.history.ratings.dtype == np.float32
    # train: everything but the two targets of each evaluated user; b stays in.
    train = split.train
    assert len(train) == len(ROWS) - 4
    assert sorted(train.loc[train["user"] == "b", "item"]) == ["3", "4"]
    assert sorted(train.loc[train["user"] == "a", "item"]) == ["1", "10", "2"]
    assert list(train.columns) == ["user", "item", "rating", "timestamp"]


def test_masked_items_never_contains_the_target() -> None:
    split = leave_last_out(_dataset(ROWS))
    ds = split.dataset
    case_c = split.test[1]
    assert case_c.target == ds.item_index["6"]
    assert ds.item_index["6"] in case_c.history.items  # seen before...
    assert masked_items(case_c).tolist() == [ds.item_index["7"]]  # ...but never masked
    case_a = split.test[0]
    assert sorted(masked_items(case_a)) == sorted(case_a.history.items)


def test_histories_are_read_only() -> None:
    case = leave_last_out(_dataset(ROWS)).test[0]
    with pytest.raises(ValueError):
        case.history.items[0] = 3


def test_unknown_item_in_hand_built_dataset_is_an_error() -> None:
    with pytest.raises(UnknownIdError, match="'99'"):
        leave_last_out(_dataset(ROWS + [("a", "99", 1.0, 99)]))


def test_leave_last_out_invariants(tiny_dataset: Dataset) -> None:
    split = leave_last_out(tiny_dataset)
    frame = tiny_dataset.interactions
    per_user = frame.groupby("user").size()
    assert len(split.test) == (per_user >= 3).sum() == len(split.validation)
    assert len(split.train) + 2 * len(split.test) == len(frame)
    index = tiny_dataset.item_index
    for val, test in zip(split.validation, split.test):
        assert val.user == test.user
        assert (np.diff(test.history.timestamps) >= 0).all()  # chronological
        # the test history is the validation history plus the validation target
        assert test.history.items.tolist() == val.history.items.tolist() + [val.target]
        val_ts = test.history.timestamps[-1]
        test_ts = frame.loc[frame["user"] == test.user, "timestamp"].max()
        assert val_ts <= test_ts  # validation precedes test
        # the user's training events are exactly the validation history: nothing at or
        # after the validation target leaks into fitting
        mine = split.train[split.train["user"] == test.user]
        train_events = sorted(zip(mine["item"].map(index), mine["timestamp"]))
        assert train_events == sorted(zip(val.history.items.tolist(),
                                          val.history.timestamps.tolist()))
        assert (mine["timestamp"] <= val_ts).all()


def _timeline() -> Dataset:
    rows = []
    for t in range(100):  # 100 events, t = 0..99, users take turns
        user = "early" if t < 10 else f"u{t % 4}"
        rows.append((user, str(t % 12 + 1), 3.0, t))
    rows.append(("late", "1", 4.0, 95))  # only after the cut: no history
    return _dataset(rows)


def test_temporal_split() -> None:
    ds = _timeline()
    val_cut, test_cut = temporal_cuts(ds, 0.1, 0.1)
    stamps = ds.interactions["timestamp"]
    assert 0.05 <= (stamps >= test_cut).mean() <= 0.15
    assert val_cut < test_cut
    split = temporal(ds, test_fraction=0.1, validation_fraction=0.1)
    assert (split.train["timestamp"] < val_cut).all()
    assert len(split.train) == (stamps < val_cut).sum()
    assert {c.user for c in split.test} == {"u0", "u1", "u2", "u3"}
    assert split.skipped["test: no history before the cut"] == 1  # 'late'
    for case in split.test:
        hist = case.history.timestamps
        assert (hist < test_cut).all() and (np.diff(hist) >= 0).all()
        # history includes validation-period events
        assert (hist >= val_cut).any()
        events = stamps[(ds.interactions["user"] == case.user) & (stamps >= test_cut)]
        first = ds.interactions.loc[events.idxmin()]
        assert ds.item_ids[case.target] == first["item"]
    for case in split.validation:
        assert (case.history.timestamps < val_cut).all()


def test_temporal_needs_timestamps_and_sane_fractions() -> None:
    ds = _dataset(ROWS)
    with pytest.raises(ConfigError, match="test_fraction"):
        temporal(ds, test_fraction=0.6, validation_fraction=0.5)
    with pytest.raises(DataFormatError, match="needs a timestamp on every interaction"):
        temporal(_dataset([("a", "1", 1.0, -1), ("a", "2", 1.0, 3)]))
