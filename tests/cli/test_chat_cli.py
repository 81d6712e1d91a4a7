"""`tastelens chat`: a scripted conversation through typer's CliRunner on a tiny movie catalog.

The dataset is written in the generic format to a temp folder and loaded by the command
itself; the pipeline and the LLM backend are injected through the command module's seams
(``build_pipeline``, ``build_backend``): every test runs once on the stand-in pipeline (exact
ranking) and once on the real RecommendPipeline over a HashingEncoder index, and a FakeBackend
answers the intent requests.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tastelens.cli import chat as chat_cmd
from tastelens.cli.main import app
from tastelens.llm.fake import FakeBackend

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).parents[1] / "agent" / "chat" / "test_chat_support.py")
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)

runner = CliRunner()
SCRIPT = "something like Heat but funnier\nno horror\nmore recent ones\n"


@pytest.fixture()
def data_dir(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no ./tastelens.toml
    for var in ("TASTELENS_DATA", "TASTELENS_LLM__BACKEND"):
        monkeypatch.delenv(var, raising=False)
    dataset = S.make_movie_dataset()
    folder = tmp_path / "movies"
    folder.mkdir()
    with (folder / "items.jsonl").open("w") as out:
        for it in dataset.items.values():
            out.write(json.dumps({"id": it.id, "title": it.title, "year": it.year,
                                  "categories": list(it.categories),
                                  "keywords": list(it.keywords)}) + "\n")
    dataset.interactions.to_csv(folder / "interactions.csv", index=False)
    return folder


@pytest.fixture(params=["stand-in", "real"])
def injected(request, monkeypatch, tmp_path) -> dict:
    """The chat command with a FakeBackend, over the stand-in or the real pipeline."""
    made: dict = {}

    def pipeline(settings, dataset, llm):
        made["pipeline"] = (S.StandInPipeline(dataset) if request.param == "stand-in"
                            else S.RecordedPipeline(dataset, tmp_path / "real"))
        made["dataset"] = dataset
        return made["pipeline"]

    def backend(settings):
        made["llm"] = FakeBackend(responder=lambda request: '{"action": "recommend"}')
        return made["llm"]

    monkeypatch.setattr(chat_cmd, "build_pipeline", pipeline)
    monkeypatch.setattr(chat_cmd, "build_backend", backend)
    return made


def invoke(data_dir: Path, *args: str, script: str = SCRIPT):
    return runner.invoke(app, ["--cache-dir", str(data_dir.parent / "cache"), "chat",
                               "--data", str(data_dir), *args], input=script)


def test_scripted_chat_honours_constraints(data_dir, injected) -> None:
    result = invoke(data_dir, "--user", "2", "--json")
    assert result.exit_code == 0, result.output
    turns = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert len(turns) == 3
    items = injected["dataset"].items

    def cats(turn):
        return [set(items[r["item"]].categories) for r in turn["recommendations"]["items"]]

    first, second, third = turns
    assert first["constraints"]["seed_items"] == ["1"]  # Heat (1995)
    assert all("Comedy" in c for c in cats(first))
    assert {"Action", "Crime"} <= cats(first)[0]  # resembles the seed
    assert second["constraints"]["exclude_categories"] == ["Horror"]
    assert second["recommendations"]["items"]
    assert all("Horror" not in c for c in cats(second))
    bound = third["constraints"]["year_min"]
    assert bound is not None and third["recommendations"]["items"]
    for rec in third["recommendations"]["items"]:
        assert items[rec["item"]].year >= bound
        assert "Horror" not in items[rec["item"]].categories
    # the rules are sure of each of these messages: no LLM reading was asked for
    assert [t["intent"]["source"] for t in turns] == ["rules"] * 3
    assert [t["report"]["path"] for t in turns] == ["rules"] * 3
    assert [t["report"]["kind"] for t in turns] == ["recommend", "refine", "refine"]
    assert injected["llm"].received == [] and injected["llm"].closed


def test_rich_output_shows_reply_table_and_timing(data_dir, injected) -> None:
    result = invoke(data_dir, "--user", "2", script=SCRIPT + "why the second one?\nquit\n"
                                                           "never read\n")
    assert result.exit_code == 0, result.output
    out = result.output
    assert "tastelens chat" in out and "you> something like Heat but funnier" in out
    assert "Here are" in out and "without Horror" in out and "from " in out
    assert "Rush Hour (1998)" in out  # a row of the first table
    assert "#2 " in out and "never read" not in out
    assert len(injected["pipeline"].calls) == 3  # 'why' asked the last list, not the pipeline


def test_new_visitor_and_llm_off(data_dir, injected) -> None:
    result = invoke(data_dir, "--no-llm", "--json", script="I love 90s Disney musicals\n")
    assert result.exit_code == 0, result.output
    turn = json.loads(result.output.strip())
    assert turn["intent"]["source"] == "rules" and turn["intent"]["llm"] == "off"
    call = injected["pipeline"].calls[0]
    assert call["user"] is None and call["history"] == []
    assert call["profile"].interests[0].label == "90s Disney musicals"
    assert not injected["llm"].received


def test_unknown_user_is_an_error_without_traceback(data_dir, injected) -> None:
    result = invoke(data_dir, "--user", "999")
    assert result.exit_code == 1
    assert "unknown user id '999'" in result.output and "Traceback" not in result.output
