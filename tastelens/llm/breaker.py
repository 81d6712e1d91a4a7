"""A circuit breaker per LLM backend: stop calling a server that keeps timing out.

    closed ──(N consecutive failed calls)──> open ──(cool-down passed)──> half-open
      ^                                        ^                              │
      └──────────(the probe call succeeds)─────┼──────(the probe fails)───────┘

A *failure* is a call that found the server unreachable (``LLMUnavailableError``) or whose
requests timed out with no reply at all; a *success* is any call the server answered (a
completion, or even a 4xx/5xx: the server is alive). While open, calls fail at once with
:class:`CircuitOpenError`, an ``LLMUnavailableError``, so every stage serves the fallback it
already has for a server that is down (retrieval order, data-template explanations,
rules-only chat reading, data-facts profiles), flagged in its report. After ``cooldown_s``
one call goes through as a probe while the others still fail fast; its outcome closes the
breaker or opens it for another cool-down. Thread-safe; the state is read from memory
(:meth:`CircuitBreaker.snapshot`), so a health check never waits on the LLM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field

from tastelens.llm.errors import LLMUnavailableError

BreakerState = Literal["closed", "open", "half_open", "off"]


class CircuitOpenError(LLMUnavailableError):
    """The breaker is open: the LLM was not called (it failed repeatedly just before)."""


class BreakerSnapshot(BaseModel):
    """The breaker's state, as /health reports it."""

    state: BreakerState = Field(description="'closed': calls go through; 'open': calls fail "
                                            "at once; 'half_open': one probe call is allowed; "
                                            "'off': no breaker (llm.breaker_failures = 0).")
    consecutive_failures: int = 0
    threshold: int = Field(description="Consecutive failures that open it.")
    retry_in_s: float | None = Field(
        default=None, description="While open: seconds until the next probe is allowed.")
    times_opened: int = 0
    short_circuited: int = Field(default=0, description="Calls refused while open.")


class CircuitBreaker:
    """See the module docstring. ``failures = 0`` turns it off (every call goes through)."""

    def __init__(self, failures: int = 3, cooldown_s: float = 30.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 0 or cooldown_s <= 0:
            raise ValueError("failures must be >= 0 and cooldown_s > 0")
        self.threshold = failures
        self.cooldown_s = cooldown_s
        self._clock = clock
        self._lock = threading.Lock()
        self._state: BreakerState = "closed" if failures else "off"
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False
        self._times_opened = 0
        self._short_circuited = 0

    @property
    def state(self) -> BreakerState:
        return self.snapshot().state

    def before_call(self) -> bool:
        """Let a call through (True when it is the half-open probe), or raise
        :class:`CircuitOpenError`."""
        with self._lock:
            if self._state in ("closed", "off"):
                return False
            now = self._clock()
            if self._state == "open" and now - self._opened_at >= self.cooldown_s:
                self._state = "half_open"
            if self._state == "half_open" and not self._probing:
                self._probing = True
                return True
            self._short_circuited += 1
            wait = max(0.0, self.cooldown_s - (now - self._opened_at))
            raise CircuitOpenError(
                f"the LLM circuit breaker is open after {self._failures} consecutive timed-out "
                f"or failed calls; " + (f"next probe in {wait:.0f} s" if self._state == "open"
                                        else "a probe call is in flight")
                + " (llm.breaker_failures, llm.breaker_cooldown_s)")

    def success(self) -> None:
        """The server answered: close."""
        with self._lock:
            if self._state == "off":
                return
            self._failures = 0
            self._state = "closed"
            self._probing = False

    def failure(self, probe: bool = False) -> None:
        """A call timed out or found the server unreachable."""
        with self._lock:
            if self._state == "off":
                return
            self._failures += 1
            if probe:
                self._probing = False
            if probe or self._state == "half_open" or (
                    self._state == "closed" and self._failures >= self.threshold):
                if self._state != "open":
                    self._times_opened += 1
                self._state = "open"
                self._opened_at = self._clock()

    def release(self, probe: bool = False) -> None:
        """A call that says nothing about the server (e.g. it was never sent)."""
        if probe:
            with self._lock:
                self._probing = False

    def snapshot(self) -> BreakerSnapshot:
        with self._lock:
            state = self._state
            retry = None
            if state == "open":
                retry = max(0.0, self.cooldown_s - (self._clock() - self._opened_at))
                if retry == 0.0:
                    state = "half_open"  # the next call is the probe
                    retry = None
            return BreakerSnapshot(state=state, consecutive_failures=self._failures,
                                   threshold=self.threshold, retry_in_s=retry,
                                   times_opened=self._times_opened,
                                   short_circuited=self._short_circuited)
