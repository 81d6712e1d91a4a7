"""The whole ``eval chat`` run in memory and on disk, with a scripted chat client (the real
chat runs in tests/eval/chat/test_chat_eval_api.py) and real baselines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastelens.config.settings import Settings
from tastelens.eval.baselines.base import SystemContext
from tastelens.eval.chat.baselines import (
    TEXT_EMBEDDING,
    popularity_counts,
    score_baseline,
)
from tastelens.eval.chat.config import BaselineSpec, ChatEvalConfig
from tastelens.eval.chat.harness import evaluate_chat, write_chat_run
from tastelens.eval.chat.replay import TurnResult
from tastelens.vectorstore.encoders import HashingEncoder

from .conftest import sample_redial, write_jsonl


class ScriptedConversation:
    def __init__(self, replies: dict[str, list[str]]) -> None:
        self.replies = replies

    def say(self, text: str) -> TurnResult:
        return TurnResult("seeker", 0.02, self.replies.get(text), "recommend", "rules")

    def observe(self, text: str) -> TurnResult:
        return TurnResult("recommender", 0.001, None, "observed", "rules")

    def close(self) -> None:
        pass


class ScriptedChat:
    """Answers 'I loved …' with Ronin first, 'I want something scary' with a list lacking
    the target, and nothing else with a list."""

    def __init__(self) -> None:
        self.opened = 0

    def open(self) -> ScriptedConversation:
        self.opened += 1
        return ScriptedConversation({
            "I loved The Matrix (1999) and Heat (1996)": ["7", "5"],
            "I want something scary": ["14", "12"]})

    def describe(self) -> dict:
        return {"mode": "scripted"}

    def close(self) -> None:
        raise AssertionError("the caller's client is not closed by the harness")


def config_for(tmp_path: Path, protocol: str = "first", **more) -> ChatEvalConfig:  # noqa: ANN003
    path = write_jsonl(tmp_path / "d.jsonl", sample_redial())
    return ChatEvalConfig.model_validate({
        "protocol": protocol, "dialogues": {"path": path, "format": "redial"},
        "bootstrap": {"n_resamples": 50},
        "baselines": [{"name": "popularity", "type": "popularity"},
                      {"name": "itemknn", "type": "itemknn"}], **more})


def test_a_run_scores_the_chat_and_the_baselines(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    chat = ScriptedChat()
    result = evaluate_chat(config_for(tmp_path), Settings(cache_dir=tmp_path / "cache"),
                           dataset=catalog, chat=chat)
    m = result.metrics
    assert chat.opened == 3
    assert m["protocol"]["n_cases"] == 3 and m["protocol"]["n_conversations_in_file"] == 5
    assert m["protocol"]["skipped"] == {"no seeker message before": 1, "no new suggestion": 1}
    assert set(m["systems"]) == {"chat", "popularity", "itemknn"}
    chat_m = m["systems"]["chat"]
    assert chat_m["recall@1"]["mean"] == pytest.approx(1 / 3, abs=1e-4)   # Ronin, first
    assert chat_m["mrr@10"]["mean"] == pytest.approx(1 / 3, abs=1e-4)
    assert chat_m["empty"]["mean"] == pytest.approx(1 / 3, abs=1e-4)      # "hi" made no list
    assert chat_m["named_back"]["mean"] == 0.0
    # co-occurrence seeded with The Matrix and Heat puts Ronin first
    assert m["systems"]["itemknn"]["recall@1"]["mean"] >= 1 / 3 - 1e-4
    assert set(m["differences"]) == {"chat - popularity", "chat - itemknn"}
    assert set(m["differences"]["chat - itemknn"]) == {"recall@10", "mrr@10"}
    assert m["baselines"]["itemknn"]["fallback_cases"] == 2
    assert m["baselines"]["popularity"]["fallback_cases"] == 0
    assert "itemknn" in m["fallback_note"]
    assert [m["by_kind"][k]["n_cases"] for k in m["by_kind"]] == [1, 1, 1]
    assert m["latency"]["seeker_turns"]["n"] == 4 and m["latency"]["seeker_turns"]["p50_s"] == 0.02
    assert m["chat_turns"]["cases_without_list"] == 1
    assert m["matching"]["titles"]["unmatched"] == 1

    frame = result.per_case
    assert frame["target"].tolist() == ["7", "13", "4"]
    assert frame["rank_chat"].tolist() == [1.0, float("inf"), float("inf")]
    assert frame["rank_itemknn"].iloc[0] == 1.0
    assert frame["chat_list"].iloc[0] == ["7", "5"]
    assert frame["turn_seconds"].iloc[0] == [0.02, 0.02]
    assert frame["kind"].tolist() == ["mentions a movie", "states genres or moods only",
                                      "says nothing yet"]

    out = write_chat_run(result, tmp_path / "run")
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "per_case.parquet",
                                                     "report.md", "run.json"]
    assert json.loads((out / "metrics.json").read_text())["systems"]["chat"] == chat_m
    back = pd.read_parquet(out / "per_case.parquet")
    assert list(back["chat_list"].iloc[0]) == ["7", "5"]
    record = json.loads((out / "run.json").read_text())
    assert record["config"]["protocol"] == "first" and "packages" in record
    report = (out / "report.md").read_text()
    for heading in ("## Overall", "## Chat minus each baseline", "## Per case kind",
                    "## The chat's turns", "## Title matching"):
        assert heading in report
    assert "the chat's lists held at most 2 items" in report      # asked for 50


def test_protocol_every_and_a_limit(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    result = evaluate_chat(config_for(tmp_path, "every", limit=2),
                           Settings(cache_dir=tmp_path / "cache"), dataset=catalog,
                           chat=ScriptedChat())
    frame = result.per_case
    assert frame["target"].tolist() == ["7", "13"]
    # the second case keeps the first list ("ok" made none); Aliens is not in it
    assert frame["chat_list"].iloc[1] == ["7", "5"]
    assert frame["chat_named_back"].tolist() == [[], ["7"]]   # Ronin was suggested before
    assert result.metrics["systems"]["chat"]["named_back"]["mean"] == 0.5
    # the turns since the first case: its target's turn (recorded), then "ok"
    assert frame["turn_roles"].iloc[1] == ["recommender", "seeker"]
    assert result.metrics["latency"]["observed_turns"]["n"] == 2
    assert result.metrics["latency"]["seeker_turns"]["n"] == 3


def test_the_llm_switch_is_refused_over_http(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    from tastelens.errors import ConfigError

    cfg = config_for(tmp_path, chat={"api": "http://127.0.0.1:1", "llm": True})
    with pytest.raises(ConfigError, match="key 'chat.llm'"):
        evaluate_chat(cfg, Settings(cache_dir=tmp_path / "c"), dataset=catalog)


def test_a_bad_dialogue_fails_before_any_chat_turn(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    from tastelens.errors import DataFormatError

    cfg = config_for(tmp_path)
    write_jsonl(cfg.dialogues.path, ['{"conversationId": 1, "messages": []}'])
    chat = ScriptedChat()
    with pytest.raises(DataFormatError, match=r"line 1, field 'initiatorWorkerId'"):
        evaluate_chat(cfg, Settings(cache_dir=tmp_path / "c"), dataset=catalog, chat=chat)
    assert chat.opened == 0


class FakeIndex:
    """The two things the text baseline asks of the item index."""

    def __init__(self, dataset) -> None:  # noqa: ANN001
        self.encoder = HashingEncoder()
        self.texts = {i: f"{it.title} {' '.join(it.categories)}"
                      for i, it in dataset.items.items()}

    def embeddings(self, ids) -> np.ndarray:  # noqa: ANN001
        return self.encoder.encode([self.texts[i] for i in ids])


def test_the_dialogue_text_baseline_and_the_fallback(catalog, tmp_path: Path) -> None:  # noqa: ANN001
    from tastelens.eval.chat.cases import ChatCase

    def case(text: str, target: str, seeds=(), excluded=()) -> ChatCase:  # noqa: ANN001
        return ChatCase("c", 0, 1, target, "", "says nothing yet", tuple(seeds),
                        tuple(excluded), (text,))

    cases = [case("something documentary please", "15"),
             case("Shining horror", "14")]
    context = SystemContext(dataset=catalog, work_dir=tmp_path,
                            resources={"item_index": FakeIndex(catalog)})
    pop = popularity_counts(catalog)
    assert pop[catalog.item_index["5"]] == 12
    text = score_baseline(BaselineSpec(name="t", type=TEXT_EMBEDDING), cases, context, pop)
    assert text.ranks.rank().tolist() == [1.0, 1.0] and not text.fallback.any()
    knn = score_baseline(BaselineSpec(name="k", type="itemknn"), cases, context, pop)
    assert knn.fallback.all()          # nobody named a film: the popularity order
    assert knn.ranks.rank()[0] > 1
    masked = score_baseline(BaselineSpec(name="p", type="popularity"),
                            [case("x", "13", excluded=("5",))], context, pop)
    assert masked.ranks.rank().tolist() == [1.0]    # Toy Story left out: Aliens is first
