"""The real ml-latest-small (TASTELENS_TEST_DATA): counts, content and speed."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

from tastelens.data import leave_last_out, load_dataset, masked_items, temporal, temporal_cuts

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def real(real_data_path: Path):
    start = time.perf_counter()
    dataset = load_dataset(real_data_path)
    return dataset, time.perf_counter() - start


def test_counts_and_content(real) -> None:
    ds, seconds = real
    assert ds.interactions["user"].nunique() == 610
    assert ds.n_items == 9742
    assert len(ds.interactions) == 100836
    assert "unknown_items" not in ds.report
    toy = ds.items["1"]
    assert toy.title == "Toy Story (1995)" and toy.year == 1995
    assert toy.categories == ("Adventure", "Animation", "Children", "Comedy", "Fantasy")
    assert ds.items["260"].tags[0] == "sci-fi"  # the most frequent tag for Star Wars (1977)
    assert sum(item.year is None for item in ds.items.values()) == 12
    assert ds.report["tags"]["tag_rows"] == 3683
    # "well under 3 s" on an idle machine; the bound is loose because CI cores are shared
    assert seconds < 6, f"loading took {seconds:.2f}s"


def test_leave_last_out_on_real_data(real) -> None:
    ds, _ = real
    start = time.perf_counter()
    split = leave_last_out(ds)
    seconds = time.perf_counter() - start
    assert len(split.test) == 610 == len(split.validation)
    assert split.skipped == {"fewer than 3 interactions": 0}
    assert len(split.train) == 100836 - 2 * 610
    for case in split.test[:50]:
        assert (np.diff(case.history.timestamps) >= 0).all()
        assert case.target not in masked_items(case)
    assert seconds < 2, f"splitting took {seconds:.2f}s"


def test_temporal_on_real_data(real) -> None:
    ds, _ = real
    val_cut, test_cut = temporal_cuts(ds, 0.1, 0.1)
    split = temporal(ds, test_fraction=0.1, validation_fraction=0.1)
    assert split.test and split.validation
    assert split.train["timestamp"].max() < val_cut
    assert all(case.history.timestamps.max() < test_cut for case in split.test)
    assert all(case.history.timestamps.max() < val_cut for case in split.validation)
