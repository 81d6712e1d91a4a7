"""ChatSession: memory across turns, 'more', 'why', 'reset', new visitors, LLM down; each
test on the stand-in pipeline and on the real RecommendPipeline (test_chat_support.py)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tastelens.agent.chat.reply import ChatTurn
from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig
from tastelens.errors import ConfigError
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


@pytest.fixture(scope="module")
def dataset():
    return S.make_movie_dataset()


@pytest.fixture(params=["stand-in", "real"])
def pipeline_kind(request) -> str:
    """Every test runs on the stand-in (exact ranking) and on the real RecommendPipeline."""
    return request.param


@pytest.fixture()
def session(pipeline_kind, tmp_path):  # noqa: ANN001, ANN201
    """``session(dataset, user="2", **kw)``: a ChatSession over the fixture's pipeline."""
    def make(dataset, user: str | None = "2", **kw) -> ChatSession:
        pipeline = (S.StandInPipeline(dataset) if pipeline_kind == "stand-in"
                    else S.RecordedPipeline(dataset, tmp_path))
        # the scripted LLM answers at once, but a loaded machine must not make it late
        kw.setdefault("config", ChatConfig(intent_deadline_s=30.0))
        return ChatSession(pipeline, dataset=dataset, user=user, **kw)
    return make


def cats(turn: ChatTurn, dataset) -> list[set[str]]:
    return [set(dataset.items[r.item].categories) for r in turn.recommendations.items]


def years(turn: ChatTurn, dataset) -> list[int]:
    return [dataset.items[r.item].year for r in turn.recommendations.items]


def test_three_turns_accumulate_constraints(dataset, pipeline_kind, session) -> None:
    chat = session(dataset)
    heat = next(i for i, it in dataset.items.items() if it.title == "Heat (1995)")

    first = chat.respond("something like Heat but funnier")
    assert first.constraints.seed_items == [heat]
    assert first.recommendations.items and all("Comedy" in c for c in cats(first, dataset))
    if pipeline_kind == "stand-in":  # it ranks by similarity to the seed
        assert {"Action", "Crime"} <= cats(first, dataset)[0]
    assert any("Horror" in c for c in cats(first, dataset)), "fixture: horror comedies exist"

    second = chat.respond("no horror")
    assert second.constraints.seed_items == [heat]  # the earlier 'like Heat' is kept
    assert second.constraints.include_categories == ["Comedy"]
    assert second.constraints.exclude_categories == ["Horror"]
    assert all("Horror" not in c and "Comedy" in c for c in cats(second, dataset))

    third = chat.respond("more recent ones")
    bound = third.constraints.year_min
    before = sorted(years(second, dataset))
    assert bound == before[len(before) // 2] + 1  # newer than the last list's median
    assert third.recommendations.items and min(years(third, dataset)) >= bound
    assert all("Horror" not in c for c in cats(third, dataset))
    # what was asked, and the films named so far never come back
    assert chat.pipeline.calls[-1]["constraints"] == third.constraints.model_copy(
        update={"exclude_items": [heat]})
    assert [t.seconds > 0 for t in (first, second, third)] == [True] * 3


def test_more_excludes_everything_shown(dataset, session) -> None:
    chat = session(dataset, config=ChatConfig(k=4))
    first = chat.respond("comedies")
    more = chat.respond("show me more")
    assert more.intent.action == "more" and len(more.recommendations.items) == 4
    shown = {r.item for r in first.recommendations.items}
    assert shown.isdisjoint(r.item for r in more.recommendations.items)
    again = chat.respond("more")
    assert shown.isdisjoint(r.item for r in again.recommendations.items)
    assert set(again.constraints.exclude_items) >= shown | {r.item for r in
                                                            more.recommendations.items}
    refined = chat.respond("no horror")  # a changed request may show earlier items again
    assert refined.constraints.exclude_items == []


def test_why_answers_from_the_last_list_without_a_new_call(dataset, session) -> None:
    chat = session(dataset, user="1")
    listed = chat.respond("something like Heat")
    calls = len(chat.pipeline.calls)
    second = listed.recommendations.items[1]
    why = chat.respond("why the second one?")
    assert why.recommendations is None and len(chat.pipeline.calls) == calls
    assert second.title in why.text and second.explanation.text in why.text
    for ev in second.explanation.evidence:  # evidence titles, from the user's history
        assert dataset.items[ev].title in why.text
    for reason in second.explanation.reasons:  # each fact, with what makes it true
        assert not reason.label or f'"{reason.label}" ({reason.support})' in why.text
    title = listed.recommendations.items[0].title.split(" (")[0]
    assert listed.recommendations.items[0].explanation.text in chat.respond(
        f"why {title}?").text
    assert "wasn't in the list" in chat.respond("why Frozen?").text
    assert "no #9" in chat.respond("why number 9?").text or len(
        listed.recommendations.items) >= 9


def test_reset_clears_and_new_seed_replaces(dataset, session) -> None:
    chat = session(dataset)
    chat.respond("like Heat, no horror, from the 90s")
    replaced = chat.respond("like Toy Story")
    toy = next(i for i, it in dataset.items.items() if it.title.startswith("Toy Story"))
    assert replaced.constraints.seed_items == [toy]
    assert replaced.constraints.exclude_categories == ["Horror"]
    flipped = chat.respond("actually horror is fine, just no comedy")
    assert "Horror" not in flipped.constraints.exclude_categories
    assert "Comedy" in flipped.constraints.exclude_categories
    reset = chat.respond("reset")
    assert reset.intent.action == "reset" and reset.constraints.is_empty()
    assert chat.last is None and chat.shown == []
    assert "haven't shown" in chat.respond("why this one?").text


def test_new_visitor_preferences_become_a_profile(dataset, session) -> None:
    chat = session(dataset, user=None)
    hello = chat.respond("what's good?")  # nothing to go on yet: widely watched picks
    assert hello.report.kind == "smalltalk" and "widely watched" in hello.text
    assert hello.recommendations.items and len(chat.pipeline.calls) == 1
    starter = chat.pipeline.calls[0]
    assert starter["history"] == [] and not starter["profile"].interests
    assert not starter["profile"].categories and starter["constraints"].is_empty()
    turn = chat.respond("I love 90s Disney musicals")
    call = chat.pipeline.calls[-1]
    assert call["user"] is None and call["history"] == []
    profile = call["profile"]
    assert [(i.label, i.granularity, i.evidence) for i in profile.interests] == [
        ("90s Disney musicals", "topic", [])]
    assert [c.category for c in profile.categories] == ["Musical"]
    assert turn.recommendations.items
    for rec in turn.recommendations.items:
        item = dataset.items[rec.item]
        assert "Musical" in item.categories and 1990 <= item.year <= 1999
    assert "90s Disney musicals" in turn.text
    chat.respond("no romance")
    assert [d.label for d in chat.pipeline.calls[-1]["profile"].dislikes] == ["Romance"]


def test_llm_down_falls_back_to_rules_and_stops_asking(dataset, session) -> None:
    llm = FakeBackend([LLMUnavailableError("server down")])
    chat = session(dataset, llm=llm)
    # "actually", "honestly": words no rule reads, so the LLM would be asked
    first = chat.respond("actually something like Heat but funnier")
    assert first.intent.llm == "unavailable" and first.intent.source == "rules"
    assert first.report.path == "llm-failed"
    assert all("Comedy" in c for c in cats(first, dataset))
    second = chat.respond("honestly no horror")
    assert second.intent.llm == "unavailable" and len(llm.received) == 1
    assert all("Horror" not in c for c in cats(second, dataset))
    assert (chat.stats.llm_failed, chat.stats.rules) == (2, 0)


def test_llm_reading_is_merged_and_invalid_replies_count(dataset, session) -> None:
    llm = FakeBackend([
        json.dumps({"action": "recommend", "seed_titles": ["Heat"], "wishes": ["car chases"],
                    "include_genres": ["Thriller"]}),
        "not json", "still not json"])
    chat = session(dataset, llm=llm)
    turn = chat.respond("Heat-style car chases")
    assert turn.intent.source == "rules+llm" and turn.intent.llm == "ok"
    assert "car chases" in turn.constraints.queries and "Thriller" in turn.constraints.queries
    assert turn.constraints.include_categories == []  # the LLM's genre stays soft
    assert turn.report.path == "llm" and turn.report.intent_requests == 1
    bad = chat.respond("honestly, no horror")
    assert bad.intent.llm == "invalid" and bad.constraints.exclude_categories == ["Horror"]
    assert bad.report.path == "llm-failed" and bad.report.intent_requests == 2  # + retry
    assert llm.pending == 0 and llm.stats.invalid_after_retry == 1


def test_tools_mode_needs_a_chat_model(dataset, session) -> None:
    with pytest.raises(ConfigError, match="tool-calling"):
        session(dataset, config=ChatConfig(mode="tools"))


def test_a_timed_out_llm_reading_says_timeout_not_invalid(dataset, session) -> None:
    from tastelens.llm.base import ChatFailure

    slow = ChatFailure(kind="timeout", message="no reply within 30 s")
    llm = FakeBackend([slow, ChatFailure(kind="deadline", message="not sent")])
    chat = session(dataset, llm=llm)
    first = chat.respond("actually something like Heat but funnier")
    assert first.intent.llm == "timeout" and first.intent.source == "rules"
    assert all("Comedy" in c for c in cats(first, dataset))  # the rules still answered
    second = chat.respond("honestly no horror")
    assert second.intent.llm == "timeout"  # the deadline was spent: not sent, same answer
    assert llm.stats.invalid_first == 0
