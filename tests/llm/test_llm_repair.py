"""Repairing cut-off JSON replies, and structured_many's repair / retry paths."""

import json

from pydantic import BaseModel, Field

from tastelens.llm.base import ChatRequest, ChatMessage
from tastelens.llm.fake import FakeBackend
from tastelens.llm.repair import closed_prefixes


class Reply(BaseModel):
    names: list[str] = Field(min_length=1)
    note: str = ""


def request() -> ChatRequest:
    return ChatRequest(messages=(ChatMessage(role="user", content="names?"),))


def test_closed_prefixes_end_after_complete_values_longest_first():
    text = '{"names": ["Ann", "Bo"], "note": "cut her'
    assert list(closed_prefixes(text)) == [{"names": ["Ann", "Bo"]}, {"names": ["Ann"]}]
    assert next(closed_prefixes('Sure! {"a": {"b": "c"}} and more')) == {"a": {"b": "c"}}
    assert next(closed_prefixes('{"a": "x\\"y", "b": [')) == {"a": 'x"y'}
    assert list(closed_prefixes("no json here")) == []
    assert list(closed_prefixes('{"key')) == []  # a key alone closes nothing


def test_a_cut_off_reply_is_repaired_without_a_retry():
    fake = FakeBackend().enqueue(['{"names": ["Ann", "Bo"], "note": "cut her'])
    outcome, = fake.structured_many([request()], Reply, repair=True)
    assert outcome.ok and outcome.repaired and outcome.value.names == ["Ann", "Bo"]
    assert len(fake.received) == 1
    assert (fake.stats.invalid_first, fake.stats.repaired, fake.stats.invalid_after_retry) == (
        1, 1, 0)


def test_without_repair_the_default_retry_shows_the_reply_and_the_error():
    fake = FakeBackend().enqueue(['{"names": ["Ann"', json.dumps({"names": ["Ann"]})])
    outcome, = fake.structured_many([request()], Reply)
    assert outcome.ok and not outcome.repaired and outcome.attempts == 2
    assert fake.received[1].messages[-2].role == "assistant"


def test_a_caller_built_retry_and_no_retry():
    tighter = {"type": "object", "properties": {"names": {"type": "array", "maxItems": 1}}}
    fake = FakeBackend().enqueue(["nothing", json.dumps({"names": ["Ann"]})])
    outcome, = fake.structured_many(
        [request()], Reply, repair=True,
        retry=lambda r, reply, error: r.model_copy(update={"json_schema": tighter}))
    assert outcome.ok and outcome.attempts == 2
    assert fake.received[1].json_schema == tighter
    assert fake.received[1].messages == fake.received[0].messages

    fake = FakeBackend().enqueue(["nothing"])
    outcome, = fake.structured_many([request()], Reply, retry=lambda *_: None)
    assert not outcome.ok and outcome.error.startswith("invalid:") and len(fake.received) == 1
    assert fake.stats.invalid_after_retry == 1


def test_a_request_keeps_its_own_schema():
    own = {"type": "object", "properties": {"names": {"type": "array"}}}
    fake = FakeBackend().enqueue([json.dumps({"names": ["Ann"]})])
    fake.structured_many([request().model_copy(update={"json_schema": own})], Reply)
    assert fake.received[0].json_schema == own
