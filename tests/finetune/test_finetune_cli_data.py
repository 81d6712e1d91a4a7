"""`tastelens finetune data` through typer's CliRunner, on the rich tiny dataset written as
MovieLens CSV files (so --data goes through the real loader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.finetune.data_config import load_data_config

from ..conftest import write_movielens

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def movielens_folder(rich_dataset, tmp_path) -> Path:
    return write_movielens(rich_dataset, tmp_path / "ml-rich", tags=True)


def invoke(tmp_path: Path, task: str, config_text: str, *args: str):
    config = tmp_path / f"{task}.toml"
    config.write_text(config_text)
    return CliRunner().invoke(app, ["--cache-dir", str(tmp_path / "cache"), "finetune", "data",
                                    task, "--config", str(config), *args])


def test_profile_data_command_writes_files_and_prints_the_card(movielens_folder, tmp_path):
    out = tmp_path / "out"
    result = invoke(tmp_path, "profile", 'task = "profile"\ntokenizer = false\n[profile]\n'
                    "min_past = 4\nmin_future = 2\nfuture_items = 4\n",
                    "--data", str(movielens_folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "train examples" in result.output and "Wrote" in result.output
    card = json.loads((out / "card.json").read_text())
    assert card["source"]["path"] == str(movielens_folder.resolve())
    assert card["source"]["hash_of"] == "files" and "ratings.csv" in card["source"]["files"]
    assert card["counts"]["train_examples"] > 0 and card["git_commit"] is not None
    lines = (out / "train.jsonl").read_text().splitlines()
    assert len(lines) == card["counts"]["train_examples"]
    assert json.loads(lines[0])["task"] == "profile"


def test_rank_data_command_names_the_missing_item_index(movielens_folder, tmp_path):
    out = tmp_path / "rank"
    result = invoke(tmp_path, "rank", "tokenizer = false\n[rank]\ncandidates = 8\n",
                    "--data", str(movielens_folder), "--out", str(out))
    assert result.exit_code == 1 and "index build" in result.output
    assert "Traceback" not in result.output and not out.exists()


@pytest.mark.parametrize(("text", "expected"), [
    ("[rank]\ncandidates = 1\n", "'rank.candidates'"),
    ("[rank]\nabsent = \"drop\"\n", "'rank.absent'"),
    ("[rank]\nnegatives = 5\n", "unknown key"),
    ("eval_user_fraction = 1.5\n", "'eval_user_fraction'"),
    ('task = "profile"\n', "this file is for 'profile'"),
    ("[rank\n", "not valid TOML"),
])
def test_bad_config_is_a_clear_error_before_any_work(tmp_path, text, expected):
    # --data names a folder that does not exist: the config must fail first.
    result = invoke(tmp_path, "rank", text, "--data", str(tmp_path / "missing"))
    assert result.exit_code == 1
    assert result.output.startswith("Error:") and expected in result.output, result.output
    assert "rank.toml" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "cache").exists()


def test_shipped_configs_are_valid():
    rank = load_data_config(ROOT / "finetune/configs/rank-data.toml", "rank")
    profile = load_data_config(ROOT / "finetune/configs/profile-data.toml", "profile")
    assert rank.rank.candidates == 20 and rank.rank.skip_newest == 3
    assert rank.rank.max_history is None  # the serving re-ranker's, resolved by build_data
    assert profile.profile.max_interests <= 6
