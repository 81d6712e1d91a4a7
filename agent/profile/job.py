"""The profile summarization job: profiles for many users, resumable and incremental.

For each selected user the job computes the key of the profile it would make (history
hash, model, adapter, prompt version). Users whose latest stored profile has that key are
skipped, so a restarted job finishes the rest and a re-run after new interactions only
recomputes the users whose history changed. The rest go to the profiler in batches that the
backend serves concurrently (vLLM batches them); each finished profile is stored in its own
transaction. A profile that had to fall back to the data facts (the model's reply was
unusable or the request failed) is stored, so the user still has a valid profile, and the
failure is recorded; the next run retries such users until ``max_attempts`` is reached.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from tastelens.agent.profile.facts import history_hash, load_entries
from tastelens.agent.profile.profiler import ProfileDiagnostics, Profiler
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError
from tastelens.profile_store import ProfileKey, ProfileStore
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


def run_profile_job(
    dataset: Dataset,
    profiler: Profiler,
    store: ProfileStore,
    users: Sequence[str],
    *,
    max_attempts: int = 2,
    on_profile: Callable[[InterestProfile, ProfileDiagnostics], None] | None = None,
) -> ProfileJobSummary:
    """Profile ``users`` that are not current in ``store``; see the module docstring."""
    started = time.perf_counter()
    stats_before = profiler.backend.stats.model_copy()
    failures = store.failures()
    todo: list[str] = []
    skipped_current = skipped_given_up = 0
    for user in users:
        current = store.is_current(profile_key(profiler, dataset, user))
        attempts = failures.get(user, (0, ""))[0]
        if current and user not in failures:
            skipped_current += 1
        elif current and attempts >= max_attempts:
            skipped_given_up += 1
        else:
            todo.append(user)

    llm = fallbacks = dropped_interests = dropped_evidence = 0
    reasons: dict[str, int] = {}
    for profile, diag in profiler.iter_profiles(dataset, todo):
        key = ProfileKey(user=profile.user, history_hash=profile.history_hash,
                         model=profile.provenance.model, adapter=profile.provenance.adapter or "",
                         prompt_version=profile.provenance.prompt_version)
        store.put(key, profile.model_dump_json(), fallback=diag.fallback)
        if diag.fallback:
            fallbacks += 1
            reason = _short_reason(diag)
            reasons[reason] = reasons.get(reason, 0) + 1
            store.record_failure(profile.user, diag.reason or "fallback")
        else:
            llm += 1
        dropped_interests += diag.dropped_interests
        dropped_evidence += diag.dropped_evidence
        if on_profile is not None:
            on_profile(profile, diag)

    after = profiler.backend.stats
    return ProfileJobSummary(
        selected=len(users), skipped_current=skipped_current, skipped_given_up=skipped_given_up,
        attempted=len(todo), profiled_llm=llm, fallbacks=fallbacks, fallback_reasons=reasons,
        dropped_interests=dropped_interests, dropped_evidence=dropped_evidence,
        invalid_first=after.invalid_first - stats_before.invalid_first,
        repaired=after.repaired - stats_before.repaired,
        invalid_after_retry=after.invalid_after_retry - stats_before.invalid_after_retry,
        request_errors=after.errors - stats_before.errors,
        prompt_tokens=after.prompt_tokens - stats_before.prompt_tokens,
        completion_tokens=after.completion_tokens - stats_before.completion_tokens,
        seconds=time.perf_counter() - started)
