"""The HTTP client of ``eval chat`` against a scripted server (httpx.MockTransport); the
real server is in test_chat_eval_api.py."""

from __future__ import annotations

import json

import httpx
import pytest

from tastelens.eval.chat.replay import ChatEvalError, HttpChat
from tastelens.llm.vllm_server import free_port


def scripted(log: list[dict], *, key: str = "k") -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/health":
            return httpx.Response(200, json={"status": "ok"})
        if request.headers.get("authorization") != f"Bearer {key}":
            return httpx.Response(401, json={"error": {"type": "auth", "message": "no"}})
        body = json.loads(request.content)
        if not body:
            return httpx.Response(422, json={"error": {"type": "x", "message": "bad body"}})
        log.append(body)
        if body["message"] == "boom":
            return httpx.Response(500, json={"error": {"type": "x", "message": "it broke"}})
        recs = ({"items": [{"item": "7"}, {"item": "5"}]} if body["message"] == "like Heat"
                else None)
        return httpx.Response(200, json={
            "session_id": "s1", "text": "…", "recommendations": recs,
            "turn": {"report": {"kind": "recommend" if recs else "smalltalk",
                                "path": "rules"}}})

    return httpx.MockTransport(handle)


def test_turns_carry_the_session_and_the_role() -> None:
    log: list[dict] = []
    chat = HttpChat("http://chat.test/", api_key="k", transport=scripted(log))
    assert chat.check() == {"status": "ok"}
    conv = chat.open()
    hi = conv.say("hi")
    assert hi.items is None and (hi.kind, hi.path, hi.role) == ("smalltalk", "rules", "seeker")
    seen = conv.observe("Try Ronin (1998)")
    assert seen.role == "recommender" and seen.items is None
    liked = conv.say("like Heat")
    assert liked.items == ["7", "5"] and liked.seconds >= 0
    broken = conv.say("boom")
    assert broken.items is None and broken.error == "HTTP 500: it broke"
    assert log == [{"message": "hi", "role": "user"},
                   {"message": "Try Ronin (1998)", "role": "assistant", "session_id": "s1"},
                   {"message": "like Heat", "role": "user", "session_id": "s1"},
                   {"message": "boom", "role": "user", "session_id": "s1"}]
    assert chat.describe()["url"] == "http://chat.test"


def test_a_refused_key_stops_the_run_before_any_turn() -> None:
    log: list[dict] = []
    chat = HttpChat("http://chat.test", api_key="wrong", transport=scripted(log))
    with pytest.raises(ChatEvalError, match="refused the API key"):
        chat.check()
    with pytest.raises(ChatEvalError, match="refused the API key"):
        chat.open().say("hi")
    assert log == []


def test_an_unreachable_server_is_named() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    chat = HttpChat(url, timeout_s=5)
    with pytest.raises(ChatEvalError, match=f"the chat API at {url} cannot be reached"):
        chat.check()
    with pytest.raises(ChatEvalError, match="cannot be reached"):
        chat.open().say("hi")


def test_without_the_llm_the_pipeline_asks_it_nothing() -> None:
    from tastelens.config.pipeline import PipelineConfig
    from tastelens.errors import ConfigError
    from tastelens.eval.chat.replay import no_llm_pipeline_config

    base = PipelineConfig.model_validate({"explain": {"use_llm": True}})
    off = no_llm_pipeline_config(base)
    assert off.rerank.mode == "learned" and not off.rerank.llm_feature
    assert not off.explain.use_llm and base.explain.use_llm   # a copy
    with pytest.raises(ConfigError, match="rerank.mode 'score' asks the LLM"):
        no_llm_pipeline_config(PipelineConfig.model_validate({"rerank": {"mode": "score"}}))
