"""Deadlines and the circuit breaker: a hung or dead LLM server costs an interactive caller one
short deadline, then nothing (calls fail fast) until a probe finds it back.

The hung server is real (tests/conftest.py ``HungServer``: a loopback socket that accepts and
never answers), and so is the refused one (a loopback port nobody listens on)."""

from __future__ import annotations

import threading
import time

import pytest

from tastelens.config.settings import LLMSettings, Settings
from tastelens.llm.base import ChatFailure, user
from tastelens.llm.breaker import CircuitBreaker, CircuitOpenError
from tastelens.llm.deadline import capped_timeout, llm_deadline, time_left
from tastelens.llm.errors import LLMRequestError, LLMUnavailableError
from tastelens.llm.fake import FakeBackend
from tastelens.llm.openai_compat import OpenAICompatBackend
from tastelens.llm.registry import create_backend


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


# -- the breaker's states ----------------------------------------------------------------
def test_breaker_opens_after_n_failures_probes_after_the_cooldown_and_closes() -> None:
    clock = Clock()
    breaker = CircuitBreaker(3, 30.0, clock=clock)
    for _ in range(2):
        assert breaker.before_call() is False
        breaker.failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.failure()
    assert breaker.state == "open" and breaker.snapshot().retry_in_s == 30.0
    with pytest.raises(CircuitOpenError, match="next probe in 30 s"):
        breaker.before_call()
    clock.now = 29.0
    with pytest.raises(CircuitOpenError):
        breaker.before_call()
    clock.now = 30.0
    assert breaker.snapshot().state == "half_open"
    assert breaker.before_call() is True  # the probe
    with pytest.raises(CircuitOpenError, match="probe call is in flight"):
        breaker.before_call()  # everyone else still fails fast
    breaker.failure(probe=True)  # the probe failed: open for another cool-down
    assert breaker.state == "open" and breaker.snapshot().times_opened == 2
    clock.now = 60.0
    assert breaker.before_call() is True
    breaker.success()
    snap = breaker.snapshot()
    assert (snap.state, snap.consecutive_failures, snap.short_circuited) == ("closed", 0, 3)


def test_a_success_resets_the_count_and_a_released_probe_frees_the_slot() -> None:
    clock = Clock()
    breaker = CircuitBreaker(2, 5.0, clock=clock)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed"  # not 2 consecutive
    breaker.failure()
    clock.now = 5.0
    assert breaker.before_call() is True
    breaker.release(probe=True)  # e.g. the call was never sent
    assert breaker.before_call() is True  # the next call is the probe


def test_breaker_off() -> None:
    breaker = CircuitBreaker(0)
    for _ in range(10):
        breaker.before_call()
        breaker.failure()
    assert breaker.state == "off"


def test_breaker_is_thread_safe() -> None:
    breaker = CircuitBreaker(1000, 1.0)

    def hammer() -> None:
        for _ in range(200):
            breaker.failure()

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert breaker.snapshot().consecutive_failures == 1600 and breaker.state == "open"


# -- the breaker inside every backend ---------------------------------------------------
def down(request):  # noqa: ANN001, ANN201
    return LLMUnavailableError("no server")


def test_backend_short_circuits_after_repeated_connection_failures() -> None:
    llm = FakeBackend(responder=down, breaker_failures=3, breaker_cooldown_s=60)
    for _ in range(3):
        with pytest.raises(LLMUnavailableError):
            llm.chat(user("hi"))
    assert len(llm.received) == 3
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError):
        llm.chat(user("hi"))
    assert time.perf_counter() - started < 0.05
    assert len(llm.received) == 3  # the backend was not called
    assert llm.breaker.snapshot().state == "open"


def test_timeouts_open_the_breaker_and_answers_close_it() -> None:
    clock = Clock()
    llm = FakeBackend(breaker_failures=2)
    llm.breaker = CircuitBreaker(2, 10.0, clock=clock)
    slow = ChatFailure(kind="timeout", message="slow")
    llm.enqueue([slow, slow, "back"])
    assert llm.chat(user("a")).kind == "timeout"
    assert llm.chat(user("b")).kind == "timeout"
    with pytest.raises(CircuitOpenError):
        llm.chat(user("c"))
    clock.now = 10.0
    assert llm.chat(user("probe")).text == "back"
    assert llm.breaker.state == "closed"


def test_server_errors_and_refusals_count_as_an_answering_server() -> None:
    llm = FakeBackend(breaker_failures=1)
    llm.enqueue([ChatFailure(kind="server_error", message="500"),
                 ChatFailure(kind="bad_request", message="too long"),
                 LLMRequestError("unknown model")])
    llm.chat(user("a"))
    llm.chat(user("b"))
    with pytest.raises(LLMRequestError):
        llm.chat(user("c"))
    assert llm.breaker.state == "closed"


def test_settings_configure_the_breaker() -> None:
    settings = Settings(llm=LLMSettings(backend="fake", breaker_failures=5,
                                        breaker_cooldown_s=2.5))
    llm = create_backend(settings)
    assert (llm.breaker.threshold, llm.breaker.cooldown_s) == (5, 2.5)
    assert FakeBackend().breaker.threshold == LLMSettings().breaker_failures


def test_fake_backend_from_settings_fails_like_a_missing_server() -> None:
    llm = create_backend(Settings(llm=LLMSettings(backend="fake")))
    with pytest.raises(LLMUnavailableError, match="scripted replies only"):
        llm.chat(user("hi"))


# -- deadlines --------------------------------------------------------------------------
def test_deadline_scopes_nest_and_only_shorten() -> None:
    assert time_left() is None and capped_timeout(600) == 600
    with llm_deadline(10):
        assert 9 < time_left() <= 10
        with llm_deadline(100):
            assert time_left() <= 10  # an inner scope cannot extend the outer one
        with llm_deadline(1):
            assert capped_timeout(600) <= 1
    assert time_left() is None


def test_a_spent_deadline_fails_calls_without_sending_them() -> None:
    llm = FakeBackend(breaker_failures=1)
    with llm_deadline(0):
        outcomes = llm.generate([user("a"), user("b")])
    assert [o.kind for o in outcomes] == ["deadline", "deadline"]
    assert llm.received == [] and llm.stats.errors == 2
    assert llm.breaker.state == "closed"  # it says nothing about the server


@pytest.mark.timeout(120)
def test_a_hung_server_costs_one_deadline_then_the_breaker_fails_fast(
        hung_llm_url: str) -> None:
    llm = OpenAICompatBackend(base_url=hung_llm_url, model="m", timeout_s=600,
                              breaker_failures=2, breaker_cooldown_s=60)
    import openai  # noqa: F401 - imported before the clock starts (seconds on a busy machine)

    for _ in range(2):
        started = time.perf_counter()
        with llm_deadline(2.0):
            outcome = llm.generate([user("a"), user("b")], concurrency=2)
        assert time.perf_counter() - started < 10  # 2 s, not the 600 s request timeout
        assert [o.kind for o in outcome] == ["timeout", "timeout"]
    assert llm.breaker.state == "open"
    started = time.perf_counter()
    with pytest.raises(CircuitOpenError), llm_deadline(1.0):
        llm.generate([user("c")])
    assert time.perf_counter() - started < 0.1


def test_queued_requests_share_the_deadline(hung_llm_url: str) -> None:
    llm = OpenAICompatBackend(base_url=hung_llm_url, model="m", timeout_s=600,
                              breaker_failures=0)
    started = time.perf_counter()
    with llm_deadline(1.0):
        outcomes = llm.generate([user(str(i)) for i in range(4)], concurrency=1)
    assert time.perf_counter() - started < 10
    # the first waits out the deadline; the rest are never sent
    assert [o.kind for o in outcomes] == ["timeout", "deadline", "deadline", "deadline"]


def test_a_refused_server_opens_the_breaker(refused_llm_url: str) -> None:
    llm = OpenAICompatBackend(base_url=refused_llm_url, model="m", breaker_failures=2)
    for _ in range(2):
        with pytest.raises(LLMUnavailableError, match="cannot reach"):
            llm.chat(user("a"))
    with pytest.raises(CircuitOpenError):
        llm.chat(user("a"))


def test_a_deadline_can_count_from_an_earlier_start() -> None:
    import time as clock

    with llm_deadline(10, since=clock.monotonic() - 9.5):
        assert 0 < time_left() <= 0.5
    llm = FakeBackend()
    with llm_deadline(1, since=clock.monotonic() - 2):  # e.g. it waited 2 s for a worker
        assert llm.chat(user("late")).kind == "deadline"
    assert llm.received == []


def test_a_request_cut_short_by_the_deadline_is_no_evidence_against_the_server(
        hung_llm_url: str) -> None:
    import time as clock

    llm = OpenAICompatBackend(base_url=hung_llm_url, model="m", timeout_s=600,
                              breaker_failures=1)
    # it queued for most of a 10 s deadline (e.g. for an API worker): 0.5 s were left
    with llm_deadline(10, since=clock.monotonic() - 9.5):
        outcome = llm.chat(user("late"))
    assert outcome.kind == "deadline" and "less than half" in outcome.message
    assert llm.breaker.state == "closed"
    with llm_deadline(1.0):  # the whole deadline and no answer: that counts
        assert llm.chat(user("on time")).kind == "timeout"
    assert llm.breaker.state == "open"


def test_a_part_of_the_budget_cut_off_is_the_callers_choice_not_a_server_timeout(
        hung_llm_url: str) -> None:
    llm = OpenAICompatBackend(base_url=hung_llm_url, model="m", timeout_s=600,
                              breaker_failures=1)
    started = time.perf_counter()
    with llm_deadline(1.0, part=True):  # e.g. the chat's short wait for an intent reading
        outcome = llm.chat(user("quick"))
    assert time.perf_counter() - started < 10
    assert outcome.kind == "deadline" and llm.breaker.state == "closed"
    with llm_deadline(30.0), llm_deadline(1.0, part=True):  # inside a turn's budget too
        assert 0 < time_left() <= 1.0
        assert llm.chat(user("quick")).kind == "deadline"
    assert llm.breaker.state == "closed"
