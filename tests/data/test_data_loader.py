"""Format auto-detection, not-found messages and data-path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastelens.config.settings import Settings
from tastelens.data import load_dataset, locate_dataset, resolve_data_path
from tastelens.errors import DatasetNotFoundError


@pytest.mark.parametrize("fixture, fmt, n_items", [
    ("ml_csv_dir", "movielens-csv", 5), ("ml100k_dir", "movielens-100k", 4),
    ("ml1m_dir", "movielens-1m", 3), ("generic_dir", "generic", 3)])
def test_auto_detection(request, fixture: str, fmt: str, n_items: int) -> None:
    folder = request.getfixturevalue(fixture)
    ds = load_dataset(folder)
    assert ds.report["format"] == fmt and ds.n_items == n_items
    assert ds.name == folder.name and ds.source == folder
    assert ds.report["load_seconds"] >= 0


def test_detection_looks_one_level_down(ml_csv_dir: Path) -> None:
    # e.g. the folder a zip was unpacked into
    folder, fmt = locate_dataset(ml_csv_dir.parent)
    assert folder == ml_csv_dir and fmt.name == "movielens-csv"


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")


def test_file_instead_of_folder(ml_csv_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="is a file"):
        load_dataset(ml_csv_dir / "movies.csv")


def test_unrecognised_folder_lists_expected_files(tmp_path: Path) -> None:
    (tmp_path / "ratings.csv").write_text("userId,movieId,rating,timestamp\n")
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset(tmp_path)
    message = str(err.value)
    assert "Found: ratings.csv" in message
    for expected in ("movies.csv + ratings.csv", "u.data + u.item", "ratings.dat + movies.dat",
                     "items.jsonl + interactions.csv or interactions.parquet"):
        assert expected in message


def test_two_nested_datasets_are_ambiguous(ml_csv_dir: Path, ml1m_dir: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="several sub-folders"):
        load_dataset(ml_csv_dir.parent)


def test_resolve_data_path_precedence(tmp_path: Path, monkeypatch) -> None:
    explicit, configured = tmp_path / "explicit", tmp_path / "configured"
    settings = Settings.model_construct(cache_dir=tmp_path / "cache", data=configured)
    assert resolve_data_path(settings, explicit) == explicit
    assert resolve_data_path(settings, None) == configured

    calls = []

    def fake_fetch(name, cache_dir, *, progress=True):
        calls.append((name, cache_dir))
        return cache_dir / "datasets" / "ml-latest-small"

    monkeypatch.setattr("tastelens.data.download.fetch_dataset", fake_fetch)
    bare = Settings.model_construct(cache_dir=tmp_path / "cache", data=None)
    resolved = resolve_data_path(bare, None, progress=False)
    assert resolved == tmp_path / "cache" / "datasets" / "ml-latest-small"
    assert calls == [("movielens-small", tmp_path / "cache")]
