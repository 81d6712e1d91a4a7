"""Dated tags reach an evaluation only when written before its cut."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tastelens.data import leave_last_out, load_dataset, temporal
from tastelens.data.tags import aggregate, tags_before

# user 1 rates 1@100, 2@200, 3@300 (validation target), 4@400 (test target);
# user 3 has two events only (not evaluated).
TAGS = """userId,movieId,tag,timestamp
1,3,heist,250
1,3,spoiler ending,300
1,4,twist,450
3,1,pixar,900
2,1,Pixar,100
"""


def _folder(ml_csv_dir: Path) -> Path:
    (ml_csv_dir / "tags.csv").write_text(TAGS)
    return ml_csv_dir


def test_loader_keeps_dated_events_and_all_tags(ml_csv_dir: Path) -> None:
    ds = load_dataset(_folder(ml_csv_dir))
    assert ds.tag_events is not None and len(ds.tag_events) == 5
    assert ds.tag_events["timestamp"].tolist() == [250, 300, 450, 900, 100]
    assert ds.items["3"].tags == ("heist", "spoiler ending")  # serving sees everything
    assert ds.items["1"].tags == ("pixar",)


def test_leave_last_out_drops_tags_from_the_held_out_period(ml_csv_dir: Path) -> None:
    ds = load_dataset(_folder(ml_csv_dir))
    split = leave_last_out(ds)
    items = split.dataset.items
    # user 1's cut is their validation event (t=300): "spoiler ending" and "twist" go
    assert items["3"].tags == ("heist",) and items["4"].tags == ()
    # user 3 is not evaluated, user 2's tag predates their cut (t=250): both stay
    assert items["1"].tags == ("pixar",)
    assert split.dataset.report["tags_before_cut"] == {
        "tag_events_kept": 3, "tag_events_dropped": 2, "items_changed": 2}
    assert ds.items["3"].tags == ("heist", "spoiler ending")  # the input is untouched
    assert split.dataset.items["2"] is ds.items["2"]


def test_temporal_split_uses_the_validation_cut(ml_csv_dir: Path) -> None:
    ds = load_dataset(_folder(ml_csv_dir))
    split = temporal(ds, test_fraction=0.4, validation_fraction=0.2)  # cuts 300 and 350
    assert split.dataset.tag_events["timestamp"].tolist() == [250, 100]
    assert split.dataset.items["3"].tags == ("heist",) and split.dataset.items["1"].tags == (
        "Pixar",)


def test_no_dated_tags_returns_the_same_dataset(generic_dir: Path) -> None:
    ds = load_dataset(generic_dir)
    assert ds.tag_events is None
    assert leave_last_out(ds).dataset is ds and tags_before(ds, 0) is ds


def test_aggregate_orders_by_count_then_first_seen() -> None:
    events = pd.DataFrame({"user": ["a"] * 5, "item": ["1", "1", "1", "2", "1"],
                           "tag": ["Fun", "dark", "fun", "x", "dark"],
                           "timestamp": [1, 2, 3, 4, 5]})
    assert aggregate(events) == {"1": ("Fun", "dark"), "2": ("x",)}
