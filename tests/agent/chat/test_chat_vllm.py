"""The scripted chat with the real model: the rules read the messages they are sure of (no
intent request), the session's vLLM server reads the one they are not (guided JSON intent),
and re-ranks (score mode) inside the real pipeline."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig

pytestmark = pytest.mark.integration

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


def test_three_turns_with_the_real_model_honour_constraints(vllm_managed, tmp_path) -> None:  # noqa: ANN001
    dataset = S.make_movie_dataset()
    pipeline = S.RecordedPipeline(dataset, tmp_path, llm=vllm_managed, rerank="score")
    # a generous deadline: this test is about what the model reads, not how fast
    chat = ChatSession(pipeline, dataset=dataset, user="2", llm=vllm_managed,
                       config=ChatConfig(intent_deadline_s=60.0))
    asked = vllm_managed.stats.requests

    turns = [chat.respond(m) for m in
             ("something like Heat but funnier", "no horror", "more recent ones")]
    first, second, third = turns
    assert all(t.intent.sure and t.report.path == "rules" for t in turns)
    assert all(t.recommendations and t.recommendations.items for t in turns)
    assert all(t.recommendations.report.rerank == "score" for t in turns)
    assert all(t.report.intent_requests == 0 for t in turns)
    assert vllm_managed.stats.requests >= asked + 3  # the re-rankings
    unsure = chat.respond("honestly, something cozy for a rainy sunday")
    assert unsure.report.path in ("llm", "llm-failed") and unsure.report.intent_requests >= 1
    assert unsure.intent.llm in ("ok", "invalid"), "the model read the message it was sent"
    assert chat.stats.rules == 3 and chat.stats.turns == 4
    seen = {e.item for e in dataset.history("2")}

    def cats(turn):  # noqa: ANN001, ANN202
        return [set(dataset.items[r.item].categories) for r in turn.recommendations.items]

    assert all("Comedy" in c for c in cats(first))
    assert all("Comedy" in c and "Horror" not in c for c in cats(second))
    bound = third.constraints.year_min
    assert bound is not None and "Horror" in third.constraints.exclude_categories
    for rec in third.recommendations.items:
        assert dataset.items[rec.item].year >= bound and rec.item not in seen
        assert set(rec.explanation.evidence) <= seen
