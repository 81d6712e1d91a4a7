"""The 'replicas' backend: least-loaded spreading, failover, clear errors (fakes); the backend
contract against the real vLLM server is in test_llm_backends_contract.py."""

from __future__ import annotations

import pytest

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.llm.base import user
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.llm.registry import backend_class
from tastelens.llm.replicas import ReplicaBackend


def echo(request):  # noqa: ANN001, ANN201
    return request.messages[-1].content


def down(request):  # noqa: ANN001, ANN201
    return LLMUnavailableError("connection refused")


def test_requests_are_spread_evenly_and_answers_keep_their_order():
    a, b, c = (FakeBackend(responder=echo) for _ in range(3))
    llm = ReplicaBackend([a, b, c])
    results = llm.generate([user(f"q{i}") for i in range(9)])
    assert [r.text for r in results] == [f"q{i}" for i in range(9)]
    assert [len(x.received) for x in (a, b, c)] == [3, 3, 3]
    assert llm.in_flight == [0, 0, 0] and llm.sent == [3, 3, 3]
    assert llm.stats.requests == 9


def test_a_replica_that_is_down_hands_its_share_to_the_others():
    good, bad = FakeBackend(responder=echo), FakeBackend(responder=down)
    llm = ReplicaBackend([bad, good], down_s=60)
    results = llm.generate([user(f"q{i}") for i in range(4)])
    assert [r.text for r in results] == [f"q{i}" for i in range(4)]
    assert len(good.received) == 4
    llm.generate([user("again")])  # the down replica is left out for down_s
    assert len(bad.received) == 1 and len(good.received) == 5  # its first request failed


def test_all_replicas_down_is_an_error_naming_them():
    llm = ReplicaBackend.for_urls(["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"],
                                  model="m", timeout_s=2)
    with pytest.raises(LLMUnavailableError, match="replica 1 of 2.*127.0.0.1:9"):
        llm.check()
    with pytest.raises(LLMUnavailableError, match="no LLM replica is reachable"):
        llm.generate([user("hi")])


def test_bad_replica_lists_are_config_errors():
    with pytest.raises(ConfigError, match="at least one URL"):
        backend_class("replicas").from_settings(Settings())
    with pytest.raises(ConfigError, match="distinct"):
        ReplicaBackend.for_urls(["http://a:1/v1", "http://a:1/v1/"], model="m")
    with pytest.raises(ConfigError, match="expected http"):
        ReplicaBackend.for_urls(["a:1"], model="m")
