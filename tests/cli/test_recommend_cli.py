"""`tastelens recommend` through typer's CliRunner on the tiny dataset written as MovieLens
CSV files, with a HashingEncoder index in the test's cache dir and the 'fake' LLM backend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.agent.recommendation import RecommendationList
from tastelens.cli.main import app
from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..conftest import write_movielens

SETTINGS = """
[embedder]
model = "hashing"

[llm]
backend = "fake"

[recommend]
profile_source = "facts"
k = 6

[recommend.collaborative.sasrec]
hidden = 16
max_epochs = 3
progress = false
"""

RANKER = """
seeds = 1
llm_feature = false

[lightgbm]
num_boost_round = 20
min_data_in_leaf = 5
"""


@pytest.fixture()
def setup(tiny_dataset, tmp_path, monkeypatch) -> tuple[Path, Path, Path]:  # noqa: ANN001
    for name in list(__import__("os").environ):
        if name.startswith("TASTELENS_"):
            monkeypatch.delenv(name)
    folder = write_movielens(tiny_dataset, tmp_path / "ml-tiny")
    settings_file = tmp_path / "tastelens.toml"
    settings_file.write_text(SETTINGS)
    cache = tmp_path / "cache"
    settings = load_settings(settings_file, cache_dir=cache)
    dataset = load_dataset(folder)
    ItemIndex.for_dataset(settings, dataset.name, HashingEncoder()).build(
        dataset.items.values(), progress=False)
    # The newcomer's path: the ranker command fits the collaborative models and the ranker.
    ranker = tmp_path / "ranker.toml"
    ranker.write_text(RANKER)
    trained = CliRunner().invoke(app, ["--settings", str(settings_file), "--cache-dir",
                                       str(cache), "rank", "train", "-c", str(ranker),
                                       "--data", str(folder)])
    assert trained.exit_code == 0, trained.output
    return folder, settings_file, cache


def invoke(setup, *args: str):  # noqa: ANN001, ANN201
    folder, settings_file, cache = setup
    return CliRunner().invoke(app, ["--settings", str(settings_file), "--cache-dir", str(cache),
                                    "recommend", "--data", str(folder), *args])


def test_recommend_prints_a_table_and_the_report(setup, tiny_dataset, monkeypatch) -> None:  # noqa: ANN001
    def unavailable(request):  # noqa: ANN001, ANN202
        raise LLMUnavailableError("no LLM server")

    monkeypatch.setattr(FakeBackend, "from_settings",
                        classmethod(lambda cls, settings: cls(responder=unavailable)))
    result = invoke(setup, "--user", "1", "--rerank", "listwise", "--genre", "Action",
                    "--genre", "Comedy")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "recommendations for user 1" in out
    assert "rerank listwise (FALLBACK" in out and "total" in out and "retrieve" in out
    assert "Action Movie" in out or "Comedy Movie" in out
    assert "Drama Movie" not in out and "Horror Movie" not in out


def test_recommend_json_honours_k_constraints_and_no_explain(setup, tiny_dataset) -> None:  # noqa: ANN001
    result = invoke(setup, "--user", "2", "--k", "4", "--json", "--rerank", "none",
                    "--no-explain", "--exclude-genre", "Comedy", "--year-min", "1990")
    assert result.exit_code == 0, result.output
    recs = RecommendationList.model_validate(json.loads(result.output))
    seen = {e.item for e in tiny_dataset.history("2")}
    assert recs.user == "2" and len(recs.items) == 4
    for rec in recs.items:
        item = tiny_dataset.items[rec.item]
        assert rec.item not in seen and item.year >= 1990 and "Comedy" not in item.categories
        assert rec.explanation is None
    assert recs.report.rerank == "none" and recs.report.profile_source == "facts"


def test_recommend_errors_are_one_line(setup) -> None:  # noqa: ANN001
    unknown = invoke(setup, "--user", "nobody", "--rerank", "none")
    assert unknown.exit_code == 1
    assert "Error: unknown user id 'nobody'" in unknown.output
    assert "Traceback" not in unknown.output
    bad_mode = invoke(setup, "--user", "1", "--rerank", "magic")
    assert bad_mode.exit_code == 1 and "--rerank 'magic'" in bad_mode.output


def test_genres_match_case_insensitively(setup, tiny_dataset) -> None:  # noqa: ANN001
    result = invoke(setup, "--user", "1", "--json", "--rerank", "none", "--genre", "comedy",
                    "--exclude-genre", "DRAMA")
    assert result.exit_code == 0, result.output
    recs = RecommendationList.model_validate(json.loads(result.output))
    assert recs.items and recs.constraints.include_categories == ["Comedy"]
    assert all(tiny_dataset.items[r.item].categories == ("Comedy",) for r in recs.items)


@pytest.mark.parametrize("args, message", [
    (("--genre", "Comdy"), "Error: --genre: unknown genre 'Comdy'; did you mean 'Comedy'?"),
    (("--exclude-genre", "Western"),
     "Error: --exclude-genre: unknown genre 'Western'; known genres: Action, Animation, "
     "Comedy, Drama, Horror, Romance"),
    (("--year-min", "2020", "--year-max", "1990"),
     "Error: --year-min 2020 is after --year-max 1990"),
])
def test_unknown_genres_and_inverted_years_are_errors(setup, args, message) -> None:  # noqa: ANN001
    result = invoke(setup, "--user", "1", "--rerank", "none", *args)
    assert result.exit_code == 1, result.output
    assert message in result.output and "Traceback" not in result.output


def test_one_k_limit_named_k(setup) -> None:  # noqa: ANN001
    from tastelens.config.pipeline import MAX_K

    over = invoke(setup, "--user", "1", "--rerank", "none", "--k", str(MAX_K + 1))
    assert over.exit_code == 2
    assert f"Invalid value for '--k': Input should be less than or equal to {MAX_K}" in \
        over.output
    assert "candidates" not in over.output


def test_the_fake_backend_from_settings_falls_back_instead_of_crashing(setup) -> None:  # noqa: ANN001
    result = invoke(setup, "--user", "1", "--rerank", "score")  # llm.backend = "fake"
    assert result.exit_code == 0, result.output
    assert "rerank score (FALLBACK: LLM unavailable: llm.backend 'fake'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.integration  # a Ray cluster
def test_recommend_all_on_ray_writes_what_the_local_engine_writes(setup, tiny_dataset,  # noqa: ANN001
                                                                   ray_cluster, tmp_path):
    import pandas as pd

    local = invoke(setup, "--all", "--out", str(tmp_path / "local.parquet"), "--k", "5")
    assert local.exit_code == 0, local.output
    on_ray = invoke(setup, "--all", "--out", str(tmp_path / "ray.parquet"), "--k", "5",
                    "--engine", "ray", "--address", ray_cluster.address, "--workers", "2",
                    "--batch-size", "8")
    assert on_ray.exit_code == 0, on_ray.output
    assert f"{len(tiny_dataset.user_ids)} users" in on_ray.output
    a = pd.read_parquet(tmp_path / "local.parquet").sort_values(["user", "rank"])
    b = pd.read_parquet(tmp_path / "ray.parquet").sort_values(["user", "rank"])
    assert len(a) == 5 * len(tiny_dataset.user_ids)
    assert set(a.columns) == {"user", "rank", "item", "title", "score", "source", "reason"}
    cols = ["user", "rank", "item", "source"]
    pd.testing.assert_frame_equal(a[cols].reset_index(drop=True), b[cols].reset_index(drop=True))
    assert not list(tmp_path.glob("*.tmp"))


@pytest.mark.parametrize("args, message", [
    (["--all"], "--all needs --out FILE.parquet"),
    (["--all", "--out", "x.csv"], "--all needs --out FILE.parquet"),
    (["--user", "1", "--all"], "either --user ID or --all"),
    (["--user", "1", "--engine", "ray"], "--out and --engine are for --all"),
    (["--all", "--out", "x.parquet", "--engine", "spark"], "--engine 'spark'"),
    (["--all", "--out", "x.parquet", "--address", "h:1"], "--address is for --engine ray"),
])
def test_recommend_all_options_are_checked_first(args, message):  # noqa: ANN001
    result = CliRunner().invoke(app, ["recommend", *args])  # before any data or model loads
    assert result.exit_code == 1 and message in result.output, result.output
