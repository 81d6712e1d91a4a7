"""`tastelens index build|query` on the tiny dataset with the hashing encoder (no model)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import tastelens.data
from tastelens.cli.main import app
from tastelens.data.dataset import Dataset

from .conftest import free_port


@pytest.fixture
def run(tiny_dataset: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    # The CLI's data step is not under test here: hand it the tiny catalog.
    monkeypatch.setattr(tastelens.data, "load_for_settings",
                        lambda settings, data=None, **kw: tiny_dataset, raising=False)
    for var in ("TASTELENS_CHROMA__MODE", "TASTELENS_CHROMA__PATH", "TASTELENS_EMBEDDER__MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)  # no ./tastelens.toml from the developer's folder

    def invoke(*args: str):
        return CliRunner().invoke(app, ["--cache-dir", str(tmp_path / "cache"), *args])

    return invoke


def _row_ids(output: str) -> list[str]:
    """Item ids from the rich table rows ('│ 1 │ 22 │ Horror Movie 22 (2001) │ …')."""
    return [m.group(1) for m in re.finditer(r"^\W*\d+\s*│\s*(\d+)\s*│", output, re.M)]


def test_build_then_rebuild_is_idempotent(run) -> None:
    first = run("index", "build", "--embedder", "hashing")
    assert first.exit_code == 0, first.output
    assert re.search(r"added\s*│\s*40\b", first.output)
    assert (Path.cwd() / "cache" / "chroma").is_dir()
    second = run("index", "build", "--embedder", "hashing")
    assert second.exit_code == 0, second.output
    assert re.search(r"unchanged\s*│\s*40\b", second.output)
    assert re.search(r"added\s*│\s*0\b", second.output)
    third = run("index", "build", "--embedder", "hashing", "--rebuild")
    assert re.search(r"added\s*│\s*40\b", third.output), third.output


def test_query_applies_genre_and_year_filters(run, tiny_dataset: Dataset) -> None:
    assert run("index", "build", "--embedder", "hashing").exit_code == 0
    result = run("index", "query", "horror movie", "--k", "10", "--genre", "Horror",
                 "--year-min", "1990", "--embedder", "hashing")
    assert result.exit_code == 0, result.output
    ids = _row_ids(result.output)
    expected = {i for i, it in tiny_dataset.items.items()
                if "Horror" in it.categories and it.year >= 1990}
    assert ids and set(ids) == expected


def test_query_genres_match_case_insensitively_and_typos_are_errors(
        run, tiny_dataset: Dataset) -> None:
    assert run("index", "build", "--embedder", "hashing").exit_code == 0
    lower = run("index", "query", "horror movie", "--k", "10", "--genre", "horror",
                "--year-min", "1990", "--embedder", "hashing")
    assert lower.exit_code == 0, lower.output
    assert {tiny_dataset.items[i].categories[0] for i in _row_ids(lower.output)} == {"Horror"}
    typo = run("index", "query", "x", "--genre", "Horor", "--embedder", "hashing")
    assert typo.exit_code == 1
    assert "Error: --genre: unknown genre 'Horor'; did you mean 'Horror'?" in typo.output
    inverted = run("index", "query", "x", "--year-min", "2020", "--year-max", "1990",
                   "--embedder", "hashing")
    assert inverted.exit_code == 1 and "--year-min 2020 is after --year-max 1990" in \
        inverted.output


def test_query_without_index_tells_how_to_build(run) -> None:
    result = run("index", "query", "anything", "--embedder", "hashing")
    assert result.exit_code == 1
    assert "tastelens index build" in result.output
    assert "Traceback" not in result.output


def test_unreachable_server_is_one_clear_line(run, monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setenv("TASTELENS_CHROMA__MODE", "http")
    monkeypatch.setenv("TASTELENS_CHROMA__PORT", str(port))
    result = run("index", "build", "--embedder", "hashing")
    assert result.exit_code == 1
    assert f"no Chroma server at http://127.0.0.1:{port}" in result.output
    assert "Traceback" not in result.output
