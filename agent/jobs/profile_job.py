"""The profile summarization job: profiles for many users, resumable and incremental.

For each selected user the job computes the key of the profile it would make (history
hash, model, adapter, prompt version). Users whose latest stored profile has that key are
skipped, so a restarted job finishes the rest and a re-run after new interactions only
recomputes the users whose history changed. The rest go to the profiler in batches that the
backend serves concurrently (vLLM batches them); each finished profile is stored in its own
transaction, exactly once (``ProfileStore.put_many``). A profile that had to fall back to
the data facts (the model's reply was unusable or the request failed) is stored, so the
user still has a valid profile, and the failure is recorded; the next run retries such
users until ``max_attempts`` is reached.

The selection (:func:`select_users`), what is stored (:func:`profile_write`) and the summary
(:class:`JobTally`) are shared with the same job on Ray (:mod:`.ray_profile`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.history import history_hash, load_entries
from tastelens.agent.profile.profiler import ProfileDiagnostics, Profiler
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError
from tastelens.llm.base import LLMStats
from tastelens.profile_store import ProfileKey, ProfileStore, ProfileWrite
from tastelens.schemas import InterestProfile


class UserSelection(BaseModel):
    """Which users a job covers: all, explicit ids, or a seeded random sample."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["all", "ids", "sample"] = "all"
    ids: list[str] = Field(default_factory=list)
    n: int | None = Field(default=None, ge=1)
    seed: int = 42

    @classmethod
    def parse(cls, text: str, seed: int = 42) -> UserSelection:
        """``all`` | ``1,2,3`` | ``sample 20`` (also ``sample:20``)."""
        value = text.strip()
        if value == "all":
            return cls(kind="all")
        parts = value.replace(":", " ").split()
        if parts and parts[0] == "sample":
            if len(parts) != 2 or not parts[1].isdigit() or int(parts[1]) < 1:
                raise ConfigError(
                    f"--users {text!r}: expected 'sample N' with N a positive integer")
            return cls(kind="sample", n=int(parts[1]), seed=seed)
        ids = [u.strip() for u in value.split(",") if u.strip()]
        if not ids:
            raise ConfigError(
                f"--users {text!r}: expected 'all', 'sample N' or comma-separated ids")
        return cls(kind="ids", ids=ids)

    def resolve(self, dataset: Dataset) -> list[str]:
        users = dataset.user_ids
        if self.kind == "all":
            return list(users)
        if self.kind == "sample":
            n = min(self.n or len(users), len(users))
            return sorted(random.Random(self.seed).sample(users, n), key=users.index)
        known = set(users)
        unknown = [u for u in self.ids if u not in known]
        if unknown:
            raise UnknownIdError(f"unknown user id(s) in dataset {dataset.name!r}: "
                                 f"{', '.join(map(repr, unknown[:10]))}")
        return list(dict.fromkeys(self.ids))


class ProfileJobSummary(BaseModel):
    """What a job did; printed at the end and written beside the store."""

    selected: int
    skipped_current: int = Field(description="Already profiled from the same inputs.")
    skipped_given_up: int = Field(description="Failed max_attempts times before; not retried.")
    attempted: int
    profiled_llm: int = Field(description="Profiles whose interests came from the model.")
    fallbacks: int = Field(description="Profiles built from data facts; recorded as failures.")
    fallback_reasons: dict[str, int] = Field(default_factory=dict)
    dropped_interests: int = 0
    dropped_evidence: int = 0
    invalid_first: int = Field(default=0, description="First replies that did not parse.")
    repaired: int = Field(default=0, description="…of which closed at their last complete "
                                                 "value and read (no retry).")
    invalid_after_retry: int = Field(default=0, description="…still invalid after the one "
                                                            "retry under the tighter schema.")
    request_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def users_per_second(self) -> float:
        return self.attempted / self.seconds if self.seconds else 0.0

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds else 0.0


def profile_key(profiler: Profiler, dataset: Dataset, user: str) -> ProfileKey:
    """The inputs a profile of ``user`` would be made from now."""
    return ProfileKey(user=user, history_hash=history_hash(load_entries(dataset, user)),
                      model=profiler.model_name, adapter=profiler.config.adapter or "",
                      prompt_version=profiler.renderer.prompt_version)


def _short_reason(diag: ProfileDiagnostics) -> str:
    reason = diag.reason or "unknown"
    return reason.split(":")[0] if reason.startswith("reply unusable") else reason


@dataclass
class JobSelection:
    """The selection step every engine shares: who is profiled, who is skipped and why."""

    selected: int
    todo: list[str]
    skipped_current: int = 0
    skipped_given_up: int = 0


def select_users(dataset: Dataset, profiler: Profiler, store: ProfileStore,
                 users: Sequence[str], max_attempts: int) -> JobSelection:
    """Users whose profile is not current (or is a fallback with attempts left) go to
    ``todo``; the others are counted as skipped."""
    failures = store.failures()
    selection = JobSelection(selected=len(users), todo=[])
    for user in users:
        current = store.is_current(profile_key(profiler, dataset, user))
        attempts = failures.get(user, (0, ""))[0]
        if current and user not in failures:
            selection.skipped_current += 1
        elif current and attempts >= max_attempts:
            selection.skipped_given_up += 1
        else:
            selection.todo.append(user)
    return selection


def profile_write(profile: InterestProfile, diag: ProfileDiagnostics) -> ProfileWrite:
    """What the store keeps of one finished profile (and its failure, for a fallback)."""
    key = ProfileKey(user=profile.user, history_hash=profile.history_hash,
                     model=profile.provenance.model, adapter=profile.provenance.adapter or "",
                     prompt_version=profile.provenance.prompt_version)
    return ProfileWrite(key=key, profile_json=profile.model_dump_json(),
                        fallback=diag.fallback,
                        failure=(diag.reason or "fallback") if diag.fallback else None)


_LLM_COUNTERS = ("invalid_first", "repaired", "invalid_after_retry", "errors", "prompt_tokens",
                 "completion_tokens")


def llm_counts(before: LLMStats, after: LLMStats) -> dict[str, int]:
    """What a backend counted between two snapshots of its stats (the summary's fields)."""
    return {name: getattr(after, name) - getattr(before, name) for name in _LLM_COUNTERS}


@dataclass
class JobTally:
    """The summary accumulation every engine shares: one :meth:`add` per finished profile,
    :meth:`add_llm` for the backend counters (one backend here, one per worker on Ray)."""

    llm: int = 0
    fallbacks: int = 0
    reasons: dict[str, int] = field(default_factory=dict)
    dropped_interests: int = 0
    dropped_evidence: int = 0
    counters: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_LLM_COUNTERS, 0))

    def add(self, diag: ProfileDiagnostics) -> None:
        if diag.fallback:
            self.fallbacks += 1
            reason = _short_reason(diag)
            self.reasons[reason] = self.reasons.get(reason, 0) + 1
        else:
            self.llm += 1
        self.dropped_interests += diag.dropped_interests
        self.dropped_evidence += diag.dropped_evidence

    def add_llm(self, counts: dict[str, int]) -> None:
        """Add backend counters (see :func:`llm_counts`)."""
        for name in _LLM_COUNTERS:
            self.counters[name] += int(counts.get(name, 0))

    def summary(self, selection: JobSelection, seconds: float) -> ProfileJobSummary:
        c = self.counters
        return ProfileJobSummary(
            selected=selection.selected, skipped_current=selection.skipped_current,
            skipped_given_up=selection.skipped_given_up, attempted=len(selection.todo),
            profiled_llm=self.llm, fallbacks=self.fallbacks, fallback_reasons=self.reasons,
            dropped_interests=self.dropped_interests, dropped_evidence=self.dropped_evidence,
            invalid_first=c["invalid_first"], repaired=c["repaired"],
            invalid_after_retry=c["invalid_after_retry"],
            request_errors=c["errors"], prompt_tokens=c["prompt_tokens"],
            completion_tokens=c["completion_tokens"], seconds=seconds)


def run_profile_job(
    dataset: Dataset,
    profiler: Profiler,
    store: ProfileStore,
    users: Sequence[str],
    *,
    max_attempts: int = 2,
    on_profile: Callable[[InterestProfile, ProfileDiagnostics], None] | None = None,
) -> ProfileJobSummary:
    """Profile ``users`` that are not current in ``store``, in this process; see the module
    docstring (and :mod:`tastelens.agent.jobs.ray_profile` for the same job on Ray)."""
    started = time.perf_counter()
    stats_before = profiler.backend.stats.model_copy()
    selection = select_users(dataset, profiler, store, users, max_attempts)
    tally = JobTally()
    for profile, diag in profiler.iter_profiles(dataset, selection.todo):
        store.put_many([profile_write(profile, diag)])  # each profile its own transaction
        tally.add(diag)
        if on_profile is not None:
            on_profile(profile, diag)
    tally.add_llm(llm_counts(stats_before, profiler.backend.stats))
    return tally.summary(selection, time.perf_counter() - started)
