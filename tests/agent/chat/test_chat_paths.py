"""Who reads a chat message: the rules alone when they are sure (no LLM request), the LLM too
when they are not, under ChatConfig.intent_deadline_s; and the counts of each path."""

from __future__ import annotations

import importlib.util
import json
import threading
import time
from pathlib import Path

import pytest

from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig
from tastelens.config.settings import Settings
from tastelens.llm.base import ChatFailure
from tastelens.llm.fake import FakeBackend

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)

REPLY = json.dumps({"action": "recommend", "wishes": ["rainy sunday"]})


@pytest.fixture(scope="module")
def dataset():
    return S.make_movie_dataset()


def session(dataset, llm, user: str | None = "2", **config) -> ChatSession:  # noqa: ANN001
    """A session on the stand-in pipeline; the fake LLM gets 30 s (not the default's short
    deadline) unless a test says otherwise: a loaded CI machine must not make it late."""
    config.setdefault("intent_deadline_s", 30.0)
    return ChatSession(S.StandInPipeline(dataset), dataset=dataset, user=user, llm=llm,
                       config=ChatConfig(**config))


@pytest.mark.parametrize("script", [
    ["something like Heat but funnier", "no horror", "more recent ones", "why the second?",
     "show me more", "why Heat?", "reset"],
    ["Heat", "comedies from the 90s", "films after 2000 without romance", "more", "hi"],
])
def test_messages_the_rules_are_sure_of_send_no_intent_request(dataset, script) -> None:
    llm = FakeBackend()  # nothing scripted: any request would fail the test
    chat = session(dataset, llm)
    turns = [chat.respond(m) for m in script]
    assert llm.received == []
    assert all(t.intent.sure and t.intent.llm == "off" for t in turns)
    assert [t.report.path for t in turns] == ["rules"] * len(script)
    assert all(t.report.intent_requests == 0 for t in turns)
    assert (chat.stats.turns, chat.stats.rules, chat.stats.llm) == (len(script), len(script), 0)


def test_a_new_visitors_stated_likes_are_read_by_the_rules(dataset) -> None:
    llm = FakeBackend()
    chat = session(dataset, llm, user=None)
    turn = chat.respond("I love 90s Disney musicals")
    assert turn.intent.sure and llm.received == [] and turn.recommendations.items
    assert turn.report.kind == "recommend"


def test_a_message_the_rules_cannot_read_sends_one_intent_request(dataset) -> None:
    llm = FakeBackend([REPLY])
    chat = session(dataset, llm)
    turn = chat.respond("something cozy for a rainy sunday")
    assert not chat.parser.parse("something cozy for a rainy sunday").sure
    assert len(llm.received) == 1 and llm.received[0].json_schema is not None
    assert turn.intent.source == "rules+llm" and turn.report.path == "llm"
    assert turn.report.intent_requests == 1
    assert "rainy sunday" in turn.constraints.queries  # merged as before
    assert (chat.stats.llm, chat.stats.rules, chat.stats.llm_failed) == (1, 0, 0)


def test_a_slow_llm_reading_falls_back_within_the_deadline(dataset) -> None:
    release = threading.Event()

    def slow(request):  # noqa: ANN001, ANN202 - a server that takes 10 s to answer
        release.wait(10)
        return REPLY

    llm = FakeBackend(responder=slow)
    chat = session(dataset, llm, intent_deadline_s=0.3)
    started = time.perf_counter()
    turn = chat.respond("actually something like Heat but funnier")
    waited = time.perf_counter() - started
    release.set()
    assert waited < 2.0 and turn.report.read_seconds < 1.0  # 0.3 s, not 10
    assert turn.report.read_seconds >= 0.3
    assert turn.intent.llm == "timeout" and turn.report.path == "llm-failed"
    assert turn.report.intent_requests == 1
    assert all("Comedy" in set(dataset.items[r.item].categories)
               for r in turn.recommendations.items)  # the rules answered alone
    assert chat.stats.llm_failed == 1 and not chat.llm_down  # slow is not down


def test_counts_of_each_path_over_a_session(dataset) -> None:
    llm = FakeBackend([REPLY, "not json", "still not json",
                       ChatFailure(kind="timeout", message="slow")])
    chat = session(dataset, llm)
    paths = [chat.respond(m).report.path for m in (
        "something like Heat but funnier",      # rules
        "something cozy for a rainy sunday",    # llm
        "honestly, no horror",                  # llm-failed: invalid twice
        "no horror",                            # rules
        "actually more recent ones",            # llm-failed: timeout
        "why the second one?")]                 # rules
    assert paths == ["rules", "llm", "llm-failed", "rules", "llm-failed", "rules"], [
        (r.kind, r.message[:80]) if hasattr(r, "kind") else r for r in llm.received]
    assert chat.stats.model_dump() == {"turns": 6, "rules": 3, "llm": 1, "llm_failed": 2}
    assert llm.pending == 0 and len(llm.received) == 4


def test_turn_kinds(dataset) -> None:
    chat = session(dataset, None)
    kinds = [chat.respond(m).report.kind for m in (
        "hello", "something like Heat", "no horror", "more", "why the second?",
        "like Toy Story", "reset")]
    assert kinds == ["smalltalk", "recommend", "refine", "more", "why", "recommend", "reset"]


def test_the_deadline_is_a_setting(monkeypatch) -> None:
    assert ChatConfig().intent_deadline_s == Settings().chat.intent_deadline_s
    monkeypatch.setenv("TASTELENS_CHAT__INTENT_DEADLINE_S", "0.75")
    assert Settings().chat.intent_deadline_s == 0.75


@pytest.mark.timeout(60)
def test_a_hung_server_costs_the_intent_deadline_and_does_not_open_the_breaker(
        dataset, hung_llm_url) -> None:  # noqa: ANN001
    from tastelens.llm.openai_compat import OpenAICompatBackend

    llm = OpenAICompatBackend(base_url=hung_llm_url, model="m", timeout_s=600,
                              breaker_failures=1)
    import openai  # noqa: F401 - imported before the clock starts

    chat = session(dataset, llm, intent_deadline_s=0.5)
    for message in ("actually something like Heat", "honestly no horror"):
        turn = chat.respond(message)
        assert turn.report.read_seconds < 3.0 and turn.report.path == "llm-failed"
    assert llm.breaker.state == "closed"  # the chat's impatience is not the server's fault
