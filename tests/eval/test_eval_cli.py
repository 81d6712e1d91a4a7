"""`tastelens eval run` through typer's CliRunner, on the tiny dataset written as MovieLens
CSV files (so --data goes through the real loader)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.eval.baselines.base import Recommender, register

from ..conftest import write_movielens

CONFIG = """
[metrics]
k = [5, 10]

[bootstrap]
reference = "popularity"
n_resamples = 100

[[systems]]
name = "random"
type = "random"

[[systems]]
name = "popularity"
type = "popularity"

[[systems]]
name = "ease-10"
type = "ease"
params = { l2 = 10.0 }
"""


@pytest.fixture()
def movielens_folder(tiny_dataset, tmp_path) -> Path:
    return write_movielens(tiny_dataset, tmp_path / "ml-tiny")


def _invoke(tmp_path: Path, *args: str):
    config = tmp_path / "tiny.toml"
    if not config.exists():
        config.write_text(CONFIG)
    return CliRunner().invoke(app, ["--cache-dir", str(tmp_path / "cache"), "eval", "run",
                                    "--config", str(config), *args])


def test_eval_run_writes_the_report_and_prints_the_table(movielens_folder, tmp_path):
    out = tmp_path / "out"
    result = _invoke(tmp_path, "--data", str(movielens_folder), "--out", str(out),
                     "--users", "20")
    assert result.exit_code == 0, result.output
    assert "ease-10" in result.output and "Wrote" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["random", "popularity", "ease-10"]
    assert metrics["protocol"]["users"] == 20
    assert metrics["protocol"]["source"] == str(movielens_folder)
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["users"]["n"] == 20
    assert run["config"]["dataset"]["path"] == str(movielens_folder)


def test_system_filter_and_default_out_dir(movielens_folder, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke(tmp_path, "--data", str(movielens_folder), "--system", "ease-10")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "eval").iterdir()
    assert run_dir.name.startswith("tiny-")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["systems"]) == ["ease-10"]
    assert metrics["protocol"]["reference"] is None and "ci" not in metrics["systems"]["ease-10"]


def test_errors_are_one_line_without_traceback(movielens_folder, tmp_path):
    (tmp_path / "tiny.toml").write_text(CONFIG.replace('type = "ease"', 'type = "eaes"'))
    result = _invoke(tmp_path, "--data", str(movielens_folder), "--out", str(tmp_path / "o"))
    assert result.exit_code == 1
    assert "systems.2.type" in result.output and "tiny.toml" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "o").exists()
    bad = _invoke(tmp_path, "--data", str(movielens_folder), "--system", "nope")
    assert bad.exit_code == 1 and "--system nope" in bad.output


def test_systems_lists_the_registry():
    result = CliRunner().invoke(app, ["eval", "systems"])
    assert result.exit_code == 0, result.output
    for name in ("random", "popularity", "ease", "itemknn", "sasrec", "embed-mean"):
        assert name in result.output


@register
class _Reporting(Recommender):
    """Random scores plus the diagnostics an LLM system reports."""

    name = "test-cli-reporting"

    def fit(self, train) -> None:  # noqa: ANN001
        self.users = 0

    def score(self, histories) -> np.ndarray:  # noqa: ANN001
        self.users += len(histories)
        rng = np.random.default_rng(0)
        return rng.random((len(histories), self.context.dataset.n_items)).astype(np.float32)

    def diagnostics(self) -> dict:
        return {"n_users": self.users, "invalid_rate": 0.125, "latency_per_user_s": 2.5}


def test_eval_run_prints_the_diagnostics_table(movielens_folder, tmp_path):
    config = tmp_path / "diag.toml"
    config.write_text('[metrics]\nk = [10]\n[bootstrap]\nn_resamples = 20\n'
                      '[[systems]]\nname = "llmish"\ntype = "test-cli-reporting"\n'
                      '[[systems]]\nname = "popularity"\ntype = "popularity"\n')
    result = CliRunner().invoke(app, ["--cache-dir", str(tmp_path / "cache"), "eval", "run",
                                      "--config", str(config), "--data", str(movielens_folder),
                                      "--out", str(tmp_path / "out"), "--users", "15"])
    assert result.exit_code == 0, result.output
    diagnostics = result.output.split("Diagnostics")[1]
    assert "llmish" in diagnostics and "12.5%" in diagnostics and "2.50" in diagnostics
    assert "popularity" not in diagnostics.split("Wrote")[0]
