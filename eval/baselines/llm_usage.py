"""What an LLM-backed system's model calls cost and how often they failed, for the report.

A system wraps each LLM stage (profiling, re-ranking) in :meth:`LLMUsage.track`; the
backend's :class:`~tastelens.llm.base.LLMStats` before and after give the requests, tokens
and time of that stage exactly (the harness runs systems one after another, so nothing else
uses the backend meanwhile). The system adds what only it can judge: how many answers it
asked for, how many were unusable before any fallback, how many fell back.
:meth:`LLMUsage.diagnostics` is what the system's ``diagnostics()`` returns: the harness
writes it into metrics.json and report.md (see :mod:`tastelens.eval.report`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from tastelens.llm.base import LLMBackend


@dataclass
class StageUsage:
    """Counters of one stage (e.g. 'profile', 'rerank') over every scored history."""

    outputs: int = 0
    """Answers the stage asked for: one per history (the fallback rate's denominator)."""
    prompts: int = 0
    """First-try prompts sent (more than ``outputs`` when a history gets several, e.g.
    re-ranking permutations): the invalid rate's denominator; 0 = same as ``outputs``."""
    invalid: int = 0
    """Answers unusable before any fallback that the system judged itself (e.g. a score-mode
    reply without the label log-probabilities); structured replies invalid at the first try
    are added from the backend's counters."""
    fallbacks: int = 0
    """Answers replaced by the deterministic fallback (after the retry, where there is one)."""
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    invalid_first: int = 0
    llm_seconds: float = 0.0
    seconds: float = 0.0
    """Wall time of the stage, model calls and the system's own work around them."""

    @property
    def invalid_total(self) -> int:
        return self.invalid + self.invalid_first

    @property
    def asked(self) -> int:
        return self.prompts or self.outputs


@dataclass
class LLMUsage:
    """Per-stage usage plus free counters (``extra``, reported per user)."""

    users: int = 0
    stages: dict[str, StageUsage] = field(default_factory=dict)
    extra: Counter[str] = field(default_factory=Counter)

    @contextmanager
    def track(self, stage: str, backend: LLMBackend | None) -> Iterator[StageUsage]:
        """Count the backend's requests, tokens and time spent inside the ``with`` block."""
        usage = self.stages.setdefault(stage, StageUsage())
        before = backend.stats.model_copy() if backend is not None else None
        started = time.perf_counter()
        try:
            yield usage
        finally:
            usage.seconds += time.perf_counter() - started
            if backend is not None and before is not None:
                after = backend.stats
                usage.requests += after.requests - before.requests
                usage.prompt_tokens += after.prompt_tokens - before.prompt_tokens
                usage.completion_tokens += after.completion_tokens - before.completion_tokens
                usage.invalid_first += after.invalid_first - before.invalid_first
                usage.llm_seconds += after.seconds - before.seconds

    def diagnostics(self) -> dict[str, Any]:
        """Flat numbers for metrics.json: n_users, llm_requests, invalid_rate (over the
        first-try prompts), fallback_rate (over the answers asked for), latency_per_user_s,
        prompt/completion tokens per user; with more than one stage also
        ``<stage>_invalid_rate`` and ``<stage>_fallback_rate``; then each ``extra`` counter
        per user."""
        stages = [s for s in self.stages.values() if s.outputs]
        outputs = sum(s.outputs for s in stages)
        users = max(self.users, 1)
        out: dict[str, Any] = {
            "n_users": self.users,
            "llm_requests": sum(s.requests for s in self.stages.values()),
            "invalid_rate": _rate(sum(s.invalid_total for s in stages),
                                  sum(s.asked for s in stages)),
            "fallback_rate": _rate(sum(s.fallbacks for s in stages), outputs),
            "latency_per_user_s": round(sum(s.seconds for s in self.stages.values()) / users, 4),
            "prompt_tokens_per_user": round(
                sum(s.prompt_tokens for s in self.stages.values()) / users, 1),
            "completion_tokens_per_user": round(
                sum(s.completion_tokens for s in self.stages.values()) / users, 1),
        }
        if len(stages) > 1:
            for name, s in self.stages.items():
                if s.outputs:
                    out[f"{name}_invalid_rate"] = _rate(s.invalid_total, s.asked)
                    out[f"{name}_fallback_rate"] = _rate(s.fallbacks, s.outputs)
        for key, value in sorted(self.extra.items()):
            out[f"{key}_per_user"] = round(value / users, 4)
        return out


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None
