"""Structured output, the one retry and the counters, on the scripted fake backend."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, Field

from tastelens.llm import (
    ChatFailure,
    ChatRequest,
    ChatResult,
    LLMUnavailableError,
    ParseOutcome,
    user,
)
from tastelens.llm.base import parse_json_reply
from tastelens.llm.fake import FakeBackend, FakeScriptExhausted


class Genre(BaseModel):
    genre: str
    confidence: float = Field(default=1.0, ge=0, le=1)


@pytest.fixture
def llm() -> FakeBackend:
    return FakeBackend(default_max_tokens=64)


def test_structured_valid_first_try_sends_schema(llm: FakeBackend) -> None:
    llm.enqueue(['{"genre": "Drama", "confidence": 0.5}'])
    outcome = llm.structured(user("Which genre?"), Genre)
    assert outcome.ok and outcome.value == Genre(genre="Drama", confidence=0.5)
    assert outcome.attempts == 1 and outcome.error is None
    assert llm.received[0].json_schema == Genre.model_json_schema()
    assert llm.stats.structured_calls == 1 and llm.stats.invalid_first == 0
    assert llm.pending == 0


def test_invalid_then_valid_retries_once_with_the_error(llm: FakeBackend) -> None:
    llm.enqueue(["I think it is a drama.", '{"genre": "Drama"}'])
    outcome = llm.structured(user("Which genre?"), Genre)
    assert outcome.ok and outcome.value.genre == "Drama"
    assert outcome.attempts == 2 and outcome.raw == ["I think it is a drama.",
                                                     '{"genre": "Drama"}']
    retry = llm.received[1]
    # The retry shows the model its own reply and says what was wrong.
    assert retry.messages[-2].role == "assistant"
    assert retry.messages[-2].content == "I think it is a drama."
    assert "not valid" in retry.messages[-1].content
    assert retry.json_schema == Genre.model_json_schema()
    assert (llm.stats.invalid_first, llm.stats.invalid_after_retry) == (1, 0)
    assert llm.stats.requests == 2


def test_invalid_twice_is_a_counted_failure_not_an_exception(llm: FakeBackend) -> None:
    llm.enqueue(['{"genre": 3}', '{"confidence": 2}'])
    outcome = llm.structured(user("Which genre?"), Genre)
    assert not outcome.ok and outcome.value is None
    assert outcome.attempts == 2 and "invalid after retry" in outcome.error
    assert "genre" in outcome.error  # names the failing field
    assert (llm.stats.invalid_first, llm.stats.invalid_after_retry) == (1, 1)
    assert llm.pending == 0 and len(llm.received) == 2  # exactly one retry


def test_a_reply_cut_at_max_tokens_says_so() -> None:
    llm = FakeBackend(default_max_tokens=3)
    llm.enqueue(['{"genre": "Drama", "confidence": 1}'] * 2)
    outcome = llm.structured(user("Which genre?"), Genre)
    assert not outcome.ok and "cut off at max_tokens (3 tokens)" in outcome.error
    assert "cut off at max_tokens" in llm.received[1].messages[-1].content


def test_python_literals_are_not_evaluated(llm: FakeBackend) -> None:
    llm.enqueue(["{'genre': 'Drama'}", "__import__('os').getcwd()"])
    outcome = llm.structured(user("Which genre?"), Genre)
    assert not outcome.ok and llm.stats.invalid_after_retry == 1


@pytest.mark.parametrize("reply", [
    '```json\n{"genre": "Comedy"}\n```',
    'Sure! Here it is: {"genre": "Comedy"} Hope that helps.',
    '  {"genre": "Comedy"}\n',
])
def test_json_wrapped_in_prose_or_fences_parses(reply: str) -> None:
    assert parse_json_reply(reply, Genre).genre == "Comedy"


def test_structured_many_retries_only_the_invalid_in_one_second_batch(llm: FakeBackend) -> None:
    llm.enqueue(['{"genre": "A"}', "nope", '{"genre": "C"}', "still nope",
                 '{"genre": "B"}', "nope again"])
    outcomes = llm.structured_many([user(f"q{i}") for i in range(4)], Genre)
    # First batch q0..q3: A, nope, C, still nope; second batch q1, q3: B, nope again.
    assert [o.value.genre if o.ok else None for o in outcomes] == ["A", "B", "C", None]
    assert [o.attempts for o in outcomes] == [1, 2, 1, 2]
    assert (llm.stats.invalid_first, llm.stats.invalid_after_retry) == (2, 1)
    assert [r.messages[0].content for r in llm.received] == ["q0", "q1", "q2", "q3", "q1", "q3"]


@pytest.fixture
def llm_dry() -> FakeBackend:
    return FakeBackend()


def test_script_exhaustion_is_a_clear_error(llm_dry: FakeBackend) -> None:
    llm_dry.enqueue(["one"])
    llm_dry.chat(user("first"))
    with pytest.raises(FakeScriptExhausted, match="request #2 has no enqueued reply.*second"):
        llm_dry.chat(user("second"))


def test_responder_answers_when_the_queue_is_empty() -> None:
    llm = FakeBackend(responder=lambda r: '{"genre": "%s"}' % r.messages[-1].content)
    outcome = llm.structured(user("Noir"), Genre)
    assert outcome.value == Genre(genre="Noir")


def test_failed_request_is_counted_and_not_retried(llm: FakeBackend) -> None:
    llm.enqueue([ChatFailure(kind="timeout", message="no reply within 1 s")])
    outcome = llm.structured(user("Which genre?"), Genre)
    assert not outcome.ok and outcome.error.startswith("timeout")
    assert llm.stats.errors == 1 and llm.stats.invalid_first == 0 and len(llm.received) == 1


def test_unavailable_server_propagates(llm: FakeBackend) -> None:
    llm.enqueue([LLMUnavailableError("cannot reach the LLM server")])
    with pytest.raises(LLMUnavailableError):
        llm.structured(user("Which genre?"), Genre)


def test_defaults_fill_requests_and_stats_add_up() -> None:
    llm = FakeBackend(default_max_tokens=3, default_temperature=0.7)
    llm.enqueue(["a b c d e", "x y"])
    results = llm.generate([user("one two"), user("three", max_tokens=10, temperature=0.0)])
    assert [r.text for r in results] == ["a b c", "x y"]
    assert [r.finish_reason for r in results] == ["length", "stop"]
    assert (llm.received[0].max_tokens, llm.received[0].temperature) == (3, 0.7)
    assert (llm.received[1].max_tokens, llm.received[1].temperature) == (10, 0.0)
    stats = llm.reset_stats()
    assert (stats.requests, stats.prompt_tokens, stats.completion_tokens) == (2, 3, 5)
    assert stats.seconds >= 0 and llm.stats.requests == 0


def test_requests_are_validated_and_round_trip() -> None:
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], logprobs=2, stop=["\n"])
    assert ChatRequest.model_validate_json(request.model_dump_json()) == request
    with pytest.raises(ValueError):
        ChatRequest(messages=[])
    with pytest.raises(ValueError):
        ChatRequest(messages=[{"role": "robot", "content": "hi"}])
    outcome = ParseOutcome[Genre](value=Genre(genre="x"), attempts=1)
    assert outcome.ok and ChatResult(text="t").ok and not ChatFailure(message="m").ok


def test_enqueue_rejects_a_bare_string(llm: FakeBackend) -> None:
    with pytest.raises(TypeError):
        llm.enqueue("not a list")
