"""Chat mode 'tools': a LangChain create_agent graph whose tools are the session's functions.

langchain_core's fake chat models do not implement ``bind_tools``; the tiny subclass below
does (it records the tool schemas it was bound with) and replays scripted AIMessages that
carry tool calls, so the test proves the agent really calls our tools with the model's
arguments and that their effects land in the session.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from tastelens.agent.chat.session import ChatSession
from tastelens.config.chat import ChatConfig

_spec = importlib.util.spec_from_file_location(
    "chat_test_support", Path(__file__).with_name("test_chat_support.py"))
S = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(S)


class ToolCallingFake(FakeMessagesListChatModel):
    """Replays ``responses`` in order and records what it was bound with and shown."""

    bound: list[str] = []
    seen: list[list[Any]] = []

    def bind_tools(self, tools, *, tool_choice=None, **kwargs):  # noqa: ARG002
        self.bound = [t.name for t in tools]
        return self

    def _generate(self, messages, stop=None, run_manager=None, **kwargs):
        self.seen.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def call(name: str, args: dict, n: int) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args, "id": f"c{n}"}])


@pytest.fixture()
def dataset():
    return S.make_movie_dataset()


def test_agent_calls_the_session_tools(dataset) -> None:
    model = ToolCallingFake(responses=[
        call("search_catalog", {"query": "heat"}, 1),
        call("recommend", {"seed_titles": ["Heat"], "include_genres": ["funny"]}, 2),
        AIMessage(content="Funny cousins of Heat."),
        call("recommend", {"exclude_genres": ["horror"], "seed_titles": ["Nonexistent Film"]},
             3),
        AIMessage(content="No horror now."),
        call("explain", {"item": "2"}, 4),
        AIMessage(content="It shares the genres."),
        call("get_profile", {}, 5),
        call("item_details", {"item_id": "1"}, 6),
        AIMessage(content="You like crime films."),
    ])
    pipeline = S.StandInPipeline(dataset)
    chat = ChatSession(pipeline, dataset=dataset, user="2", config=ChatConfig(mode="tools"),
                       chat_model=model)
    first = chat.respond("something like Heat but funnier")
    assert model.bound == ["search_catalog", "item_details", "get_profile", "recommend",
                           "explain"]  # bound when the agent first calls the model
    assert chat._agent.calls == ["search_catalog", "recommend"]
    assert first.text == "Funny cousins of Heat."
    assert first.intent.source == "tools" and first.intent.action == "recommend"
    assert first.constraints.seed_items == ["1"]
    assert first.constraints.include_categories == ["Comedy"]
    assert pipeline.calls[-1]["constraints"] == first.constraints
    assert all("Comedy" in dataset.items[r.item].categories
               for r in first.recommendations.items)
    tool_results = [m for m in model.seen[-1] if isinstance(m, ToolMessage)]
    found = json.loads(tool_results[0].content)
    assert found[0]["title"] == "Heat (1995)"
    listed = json.loads(tool_results[1].content)
    assert [i["title"] for i in listed["items"]] == [
        r.title for r in first.recommendations.items]

    second = chat.respond("no horror")
    assert second.constraints.seed_items == ["1"]  # unknown seed reported, old one kept
    assert second.constraints.exclude_categories == ["Horror"]
    reported = json.loads([m for m in model.seen[-1] if isinstance(m, ToolMessage)][-1].content)
    assert reported["not_in_catalog"] == ["Nonexistent Film"]
    assert all("Horror" not in dataset.items[r.item].categories
               for r in second.recommendations.items)
    # memory: the model saw the first turn too
    assert sum(isinstance(m, HumanMessage) for m in model.seen[-1]) == 2

    calls = len(pipeline.calls)
    why = chat.respond("why the second one?")
    assert why.recommendations is None and len(pipeline.calls) == calls
    second_item = second.recommendations.items[1]
    explained = [m for m in model.seen[-1] if isinstance(m, ToolMessage)][-1].content
    assert second_item.title in explained and second_item.explanation.text in explained
    assert why.intent.action == "explain"

    profile = chat.respond("what do you know about me?")
    assert chat._agent.calls[-2:] == ["get_profile", "item_details"]
    assert profile.text == "You like crime films." and profile.recommendations is None
    assert [t.report.kind for t in (first, second, why)] == ["recommend", "refine", "why"]
    assert chat.stats.llm == chat.stats.turns == 4  # the agent read every message


def test_unreachable_model_falls_back_to_rules(dataset) -> None:
    class Down(ToolCallingFake):
        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            raise openai.APIConnectionError(request=httpx.Request("POST", "http://x/v1"))

    chat = ChatSession(S.StandInPipeline(dataset), dataset=dataset, user="2",
                       config=ChatConfig(mode="tools"), chat_model=Down(responses=[
                           AIMessage(content="")]))
    turn = chat.respond("something like Heat but funnier")
    assert turn.intent.llm == "unavailable" and turn.intent.source == "rules"
    assert turn.report.path == "llm-failed" and chat.stats.llm_failed == 1
    assert all("Comedy" in dataset.items[r.item].categories for r in turn.recommendations.items)
