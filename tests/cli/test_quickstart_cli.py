"""`tastelens quickstart`: every step on a tiny catalog, a rerun that skips them, then a chat."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).parents[1] / "agent" / "chat" / "test_chat_support.py")
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)

runner = CliRunner()


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """(the catalog folder, the cache): a small generic catalog, the hashing embedder and
    a two-epoch SASRec, no LLM."""
    monkeypatch.chdir(tmp_path)  # no ./tastelens.toml
    for var in ("TASTELENS_DATA", "TASTELENS_LLM__BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TASTELENS_EMBEDDER__MODEL", "hashing")
    monkeypatch.setenv("TASTELENS_RECOMMEND__COLLABORATIVE__SASREC__MAX_EPOCHS", "2")
    monkeypatch.setenv("TASTELENS_RECOMMEND__COLLABORATIVE__SASREC__PROGRESS", "false")
    dataset = S.make_movie_dataset()
    folder = tmp_path / "movies"
    folder.mkdir()
    with (folder / "items.jsonl").open("w") as out:
        for it in dataset.items.values():
            out.write(json.dumps({"id": it.id, "title": it.title, "year": it.year,
                                  "categories": list(it.categories),
                                  "keywords": list(it.keywords)}) + "\n")
    dataset.interactions.to_csv(folder / "interactions.csv", index=False)
    return folder, tmp_path / "cache"


def test_quickstart_prepares_each_step_once_then_chats(setup) -> None:
    folder, cache = setup
    n_items = len(S.make_movie_dataset().items)
    quick = runner.invoke(app, ["--cache-dir", str(cache), "quickstart", "--data", str(folder),
                                "--no-llm"], input="I love Heat\n")
    assert quick.exit_code == 0, quick.output  # chats before the collaborative models exist
    assert f"{n_items} embedded, 0 unchanged" in quick.output and "not trained yet" in quick.output
    assert "note: collaborative models not trained yet" in quick.output
    assert "tastelens>" in quick.output

    first = runner.invoke(app, ["--cache-dir", str(cache), "quickstart", "--data", str(folder),
                                "--full", "--steps-only"])
    assert first.exit_code == 0, first.output
    assert f"0 embedded, {n_items} unchanged" in first.output
    assert "trained 2 epochs" in first.output and "Ready in" in first.output

    again = runner.invoke(app, ["--cache-dir", str(cache), "quickstart", "--data", str(folder),
                                "--no-llm"], input="I love Heat\n")
    assert again.exit_code == 0, again.output
    assert f"0 embedded, {n_items} unchanged" in again.output and "loaded" in again.output
    assert "tastelens chat" in again.output and "tastelens>" in again.output
    assert "note: collaborative" not in again.output
    assert "ranking: none" in again.output  # a visitor's list keeps the retrieval order

    user = str(S.make_movie_dataset().interactions["user"].iloc[0])
    mine = runner.invoke(app, ["--cache-dir", str(cache), "quickstart", "--data", str(folder),
                               "--no-llm", "--user", user], input="something exciting\n")
    assert mine.exit_code == 0, mine.output
    assert "ranking: retrieval order" in mine.output  # no ranker yet, and it says so


def test_an_unknown_user_is_refused_before_any_step(setup) -> None:
    folder, cache = setup
    done = runner.invoke(app, ["--cache-dir", str(cache), "quickstart", "--data", str(folder),
                               "--user", "nobody", "--no-llm"])
    assert done.exit_code == 1 and "unknown user id 'nobody'" in done.output
    assert "2/4" not in done.output and not (cache / "chroma").exists()
