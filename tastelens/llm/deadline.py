"""One LLM time budget per interactive request, shared by every LLM call made inside it.

    with llm_deadline(settings.llm.interactive_deadline_s):
        pipeline.recommend("1")   # the re-ranker's and the explainer's calls share 30 s

An interactive request (an API call, a chat turn, ``tastelens recommend``) opens a scope;
every LLM call inside it gets at most the time left (:func:`capped_timeout`), and a call made
once nothing is left fails at once with kind ``"deadline"``, without reaching the server
(:meth:`tastelens.llm.base.LLMBackend.generate`). A request sent with less than half of the
deadline left that gets no reply in time fails with kind ``"deadline"`` too (:func:`cut_short`):
it ran out of the caller's budget, which says little about the server, so the circuit breaker
does not count it as a timeout. So a chat turn that reads the message and
re-ranks waits for one deadline, not two, and each stage falls back as it would on a timeout.
Batch jobs (profile build, evaluation, fine-tuning data) open no scope: their calls keep
``llm.request_timeout_s``.

The deadline is a context variable: each thread (each API request's worker) and each asyncio
task has its own, and a nested scope can only shorten it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

# (end as a time.monotonic() value, the scope's length in seconds)
_SCOPE: ContextVar[tuple[float, float] | None] = ContextVar("tastelens_llm_deadline",
                                                            default=None)


@contextmanager
def llm_deadline(seconds: float | None, *, since: float | None = None,
                 part: bool = False) -> Iterator[None]:
    """LLM calls in this block share ``seconds`` counted from ``since`` (a
    ``time.monotonic()`` value, e.g. when the request arrived, so time spent waiting for a
    worker counts too; default: now). None: no deadline, the calls' own timeouts.

    ``part``: the block is a short part of the request's budget that the caller chose (the
    chat's wait for its intent reading): a call it cuts off fails with kind ``"deadline"``
    (:func:`cut_short` measures it against the whole budget, or none), so the caller's
    impatience is not counted as the server's timeout by the circuit breaker."""
    if seconds is None:
        yield
        return
    outer = _SCOPE.get()
    span = seconds
    if part:
        span = outer[1] if outer is not None else float("inf")
    scope = ((time.monotonic() if since is None else since) + seconds, span)
    token = _SCOPE.set(scope if outer is None or scope[0] < outer[0] else outer)
    try:
        yield
    finally:
        _SCOPE.reset(token)


def scope() -> tuple[float, float] | None:
    """(deadline as a ``time.monotonic()`` value, the scope's length), or None."""
    return _SCOPE.get()


def deadline() -> float | None:
    """The current deadline as a ``time.monotonic()`` value, or None outside any scope."""
    current = _SCOPE.get()
    return None if current is None else current[0]


def cut_short(timeout_s: float, given_s: float, span_s: float | None) -> bool:
    """Whether a request given ``given_s`` (its own timeout ``timeout_s``, in a deadline scope
    ``span_s`` long) got less than half of what it would have had with the whole deadline."""
    if span_s is None:
        return False
    return given_s < min(timeout_s, span_s) / 2


def time_left(end: float | None = None) -> float | None:
    """Seconds until ``end`` (default: the current deadline); None without one."""
    end = deadline() if end is None else end
    return None if end is None else end - time.monotonic()


def capped_timeout(timeout_s: float, end: float | None = None) -> float:
    """``timeout_s``, or less when the deadline ``end`` (default: the current one) is nearer;
    0 when it has passed."""
    left = time_left(end)
    return timeout_s if left is None else max(0.0, min(timeout_s, left))
