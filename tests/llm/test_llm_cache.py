"""The reply cache: identical greedy requests reach the wrapped backend once, failures and
sampled requests always go through, and the counters leave cached replies out."""

from __future__ import annotations

from tastelens.llm.base import ChatFailure, ChatMessage, ChatRequest
from tastelens.llm.cache import ReplyCache
from tastelens.llm.fake import FakeBackend


def ask(text: str, temperature: float = 0.0) -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role="user", content=text),),
                       temperature=temperature)


def test_identical_greedy_requests_are_answered_once() -> None:
    inner = FakeBackend(responder=lambda r: f"echo {r.messages[-1].content}")
    cache = ReplyCache(inner, size=2)
    first = cache.generate([ask("a"), ask("b"), ask("a")])
    assert [o.text for o in first] == ["echo a", "echo b", "echo a"]
    assert len(inner.received) == 3  # one batch: duplicates inside it are not deduplicated
    again = cache.generate([ask("a"), ask("b")])
    assert [o.text for o in again] == ["echo a", "echo b"] and all(o.cached for o in again)
    assert len(inner.received) == 3 and cache.hits == 2
    assert cache.stats.requests == 3  # cached replies are not requests
    cache.generate([ask("c")])  # size 2: "a" (least recently used) is evicted
    cache.generate([ask("a")])
    assert len(inner.received) == 5


def test_failures_and_sampled_requests_go_through() -> None:
    replies = iter([ChatFailure(kind="timeout", message="slow"), "ok"])
    inner = FakeBackend(responder=lambda r: next(replies) if r.temperature == 0 else "warm")
    cache = ReplyCache(inner)
    assert isinstance(cache.chat(ask("x")), ChatFailure)
    assert cache.chat(ask("x")).text == "ok"  # the failure was not kept
    cache.chat(ask("y", temperature=0.7))
    cache.chat(ask("y", temperature=0.7))
    assert len(inner.received) == 4 and cache.hits == 0


def test_everything_else_is_the_inner_backends() -> None:
    inner = FakeBackend()
    cache = ReplyCache(inner)
    assert cache.guided_json == inner.guided_json
    cache.close()
    assert inner.closed
