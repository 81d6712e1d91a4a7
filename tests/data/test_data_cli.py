"""`tastelens data fetch|info` through typer's CliRunner."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.data import download

runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./tastelens.toml
    for var in ("TASTELENS_DATA", "TASTELENS_CACHE_DIR"):
        monkeypatch.delenv(var, raising=False)


def _all_output(result) -> str:
    try:
        return result.output + result.stderr
    except ValueError:  # older runners without separate stderr
        return result.output


def test_info_table(ml_csv_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info",
                                 "--data", str(ml_csv_dir)])
    assert result.exit_code == 0, _all_output(result)
    out = result.output
    for fragment in ("users", "interactions", "rating range", "0.5 – 5", "time range",
                     "1970-01-01", "density", "60.0000%", "loader: tags", "movielens-csv"):
        assert fragment in out, fragment


def test_info_json(generic_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info",
                                 "--data", str(generic_dir), "--json"])
    assert result.exit_code == 0, _all_output(result)
    figures = json.loads(result.output)
    assert (figures["users"], figures["items"], figures["interactions"]) == (2, 3, 4)
    assert figures["rating_range"] == [1.0, 4.5] and figures["rated_interactions"] == 3
    assert figures["report"]["format"] == "generic"


def test_info_uses_settings_data(ml1m_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("TASTELENS_DATA", str(ml1m_dir))
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info", "--json"])
    assert result.exit_code == 0, _all_output(result)
    assert json.loads(result.output)["format"] == "movielens-1m"


def test_info_bad_path_is_one_line_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info",
                                 "--data", str(tmp_path / "missing")])
    assert result.exit_code == 1
    text = _all_output(result)
    assert "does not exist" in text and "Traceback" not in text


def test_info_malformed_file_names_line(ml_csv_dir: Path, tmp_path: Path) -> None:
    path = ml_csv_dir / "ratings.csv"
    path.write_text(path.read_text() + "9,1,4.0,later\n")
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info",
                                 "--data", str(ml_csv_dir)])
    assert result.exit_code == 1
    assert "ratings.csv, line 11, field 'timestamp'" in _all_output(result)


def test_fetch_from_local_server_then_cached(tmp_path: Path, monkeypatch, served,
                                             make_zip) -> None:
    root, base = served
    (root / "ml.zip").write_bytes(make_zip())
    remote = dataclasses.replace(download.REMOTE_DATASETS["movielens-small"],
                                 url=base + "ml.zip", sha256=None)
    monkeypatch.setitem(download.REMOTE_DATASETS, "movielens-small", remote)
    cache = tmp_path / "cache"
    first = runner.invoke(app, ["--cache-dir", str(cache), "data", "fetch", "movielens-small"])
    assert first.exit_code == 0, _all_output(first)
    assert "downloaded to" in first.output
    assert (cache / "datasets" / "ml-latest-small" / "movies.csv").is_file()
    again = runner.invoke(app, ["--cache-dir", str(cache), "data", "fetch"])
    assert again.exit_code == 0 and "already cached" in again.output


def test_fetch_unknown_name(tmp_path: Path) -> None:
    result = runner.invoke(app, ["--cache-dir", str(tmp_path), "data", "fetch", "imdb"])
    assert result.exit_code == 1
    assert "unknown dataset 'imdb'" in _all_output(result)


def test_info_reports_descriptor_coverage_with_side_info(ml_csv_dir: Path, tmp_path: Path,
                                                         monkeypatch) -> None:
    side = tmp_path / "side.csv"
    side.write_text("item,keywords\n1,toy|rivalry\n2,president\n")
    base = ["--cache-dir", str(tmp_path / "c"), "data", "info", "--data", str(ml_csv_dir),
            "--json"]
    plain = json.loads(runner.invoke(app, base).output)["descriptors"]
    # tags.csv tags items 1 and 3; ratings fall on items 1-5 (9 events, 5 on 1 or 3)
    assert plain["items"] == 2 and plain["interactions_share"] == round(5 / 9, 4)
    result = runner.invoke(app, [*base, "--side-info", str(side)])
    assert result.exit_code == 0, _all_output(result)
    figures = json.loads(result.output)
    assert figures["descriptors"]["items"] == 3 and figures["descriptors"]["items_share"] == 0.6
    assert figures["descriptors"]["interactions_share"] == round(7 / 9, 4)
    assert figures["report"]["side_info"]["items_reached"] == 2
    # the same through the environment, and the table says it in words
    monkeypatch.setenv("TASTELENS_SIDE_INFO", str(side))
    table = runner.invoke(app, base[:-1]).output
    assert "on 60.0% of items" in table and "77.8% of interactions" in table


def test_bad_side_info_is_one_line_error(ml_csv_dir: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.csv"
    side.write_text("item,keywords\n1,\"['a', 5]\"\n")
    result = runner.invoke(app, ["--cache-dir", str(tmp_path / "c"), "data", "info", "--data",
                                 str(ml_csv_dir), "--side-info", str(side)])
    assert result.exit_code == 1
    assert "side.csv, line 2, field 'keywords'" in _all_output(result)
    assert "Traceback" not in _all_output(result)
