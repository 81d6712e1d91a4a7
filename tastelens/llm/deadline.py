"""One LLM time budget per interactive request, shared by every LLM call made inside it.

    with llm_deadline(settings.llm.interactive_deadline_s):
        pipeline.recommend("1")   # the re-ranker's and the explainer's calls share 30 s

An interactive request (an API call, a chat turn, ``tastelens recommend``) opens a scope;
every LLM call inside it gets at most the time left (:func:`capped_timeout`), and a call made
once nothing is left fails at once with kind ``"deadline"``, without reaching the server
(:meth:`tastelens.llm.base.LLMBackend.generate`). So a chat turn that reads the message and
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

_END: ContextVar[float | None] = ContextVar("tastelens_llm_deadline", default=None)


@contextmanager
def llm_deadline(seconds: float | None, *, since: float | None = None) -> Iterator[None]:
    """LLM calls in this block share ``seconds`` counted from ``since`` (a
    ``time.monotonic()`` value, e.g. when the request arrived, so time spent waiting for a
    worker counts too; default: now). None: no deadline, the calls' own timeouts."""
    if seconds is None:
        yield
        return
    end = (time.monotonic() if since is None else since) + seconds
    outer = _END.get()
    token = _END.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _END.reset(token)


def deadline() -> float | None:
    """The current deadline as a ``time.monotonic()`` value, or None outside any scope."""
    return _END.get()


def time_left(end: float | None = None) -> float | None:
    """Seconds until ``end`` (default: the current deadline); None without one."""
    end = deadline() if end is None else end
    return None if end is None else end - time.monotonic()


def capped_timeout(timeout_s: float, end: float | None = None) -> float:
    """``timeout_s``, or less when the deadline ``end`` (default: the current one) is nearer;
    0 when it has passed."""
    left = time_left(end)
    return timeout_s if left is None else max(0.0, min(timeout_s, left))
