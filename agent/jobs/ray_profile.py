"""The profile job on Ray Data: the same job as :func:`.profile_job.run_profile_job`, its
per-user work spread over a Ray cluster's workers, its results stored by one writer.

    driver:  select_users (skip current)  ──► ray.data.from_items(todo users)
    workers: .map_batches(ProfileWorker)      history → prompt → guided JSON → validation
             (an actor pool; each worker holds one Profiler whose backend calls the vLLM
             replicas, least loaded first: tastelens.llm.replicas)
    driver:  iter_rows ──► ProfileStore.put_many every ``write_batch`` profiles (one writer)

The guarantees are the single-process job's:

- selection, the stored rows and the summary are the same code
  (:func:`.profile_job.select_users`, :func:`.profile_job.profile_write`,
  :class:`.profile_job.JobTally`), so users whose profile is current are skipped, changed
  histories recomputed and the summary table is the same;
- a killed worker: Ray Data restarts the actor and re-runs its batch (actor pools retry
  without limit by default); only the driver writes, a user delivered twice is written once
  (the driver's ``seen`` set, and ``put_many`` stores a real profile of the same key once);
- a killed driver: every batch written before is committed (WAL, one transaction per batch);
  at most ``write_batch`` finished profiles, or ``flush_s`` seconds of them, are lost and are
  recomputed by the rerun, which skips everything stored.

The workers see the dataset through Ray's object store (put once by the driver). Each
batch's backend counters (tokens, invalid replies, errors) travel on its first row.
"""

from __future__ import annotations

import importlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tastelens.agent.jobs.profile_job import (
    JobTally,
    ProfileJobSummary,
    llm_counts,
    profile_write,
    select_users,
)
from tastelens.agent.profile.profiler import ProfileDiagnostics, Profiler, renderer_for_settings
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import TastelensError
from tastelens.llm.base import LLMBackend
from tastelens.llm.registry import create_backend
from tastelens.profile_store import ProfileStore, ProfileWrite
from tastelens.schemas import InterestProfile


@dataclass(frozen=True)
class ProfilerSpec:
    """How every process (driver and workers) builds the same Profiler. Picklable: it is
    sent to the workers. ``backend_factory`` replaces ``create_backend(settings)`` (tests
    pass a scripted fake); with the default, point ``settings.llm`` at running servers
    (backend 'replicas' or 'openai'/'vllm' with ``base_url``), never at one each worker
    would start."""

    settings: Settings
    config: ProfilerConfig
    backend_factory: Callable[[], LLMBackend] | None = None

    def backend(self) -> LLMBackend:
        return self.backend_factory() if self.backend_factory else create_backend(self.settings)

    def profiler(self, backend: LLMBackend) -> Profiler:
        return Profiler(backend, renderer_for_settings(self.settings), self.config)


class ProfileWorker:
    """A Ray Data actor: one Profiler for the worker's life, one batch of users per call."""

    def __init__(self, spec: ProfilerSpec, dataset: list[Any]) -> None:
        import ray

        self.dataset: Dataset = ray.get(dataset[0])  # a list: Ray passes the ref, not its value
        self.backend = spec.backend()
        self.profiler = spec.profiler(self.backend)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[str]]:
        users = [str(u) for u in batch["user"]]
        before = self.backend.stats.model_copy()
        blank = [""] * len(users)
        try:
            results = self.profiler.profile_many(self.dataset, users)
        except TastelensError as exc:
            # A person must act (every replica down, a wrong model name): stop the job with
            # this error; returned as data because Ray's exception wrappers drop the cause.
            return {"user": users, "profile": blank, "diagnostics": blank, "llm": blank,
                    "error": [_error_text(exc)] + blank[1:]}
        counts = json.dumps(llm_counts(before, self.backend.stats))
        return {"user": users,
                "profile": [p.model_dump_json() for p, _ in results],
                "diagnostics": [d.model_dump_json() for _, d in results],
                "llm": [counts] + blank[1:], "error": blank}


class _Writer:
    """The job's one writer: buffers finished profiles, stores them in one transaction per
    ``size`` profiles or per ``flush_s`` seconds, whichever comes first."""

    def __init__(self, store: ProfileStore, size: int, flush_s: float) -> None:
        self.store, self.size, self.flush_s = store, size, flush_s
        self.buffer: list[ProfileWrite] = []
        self.last = time.monotonic()
        self.batches = 0

    def add(self, write: ProfileWrite) -> None:
        self.buffer.append(write)
        if len(self.buffer) >= self.size or time.monotonic() - self.last >= self.flush_s:
            self.flush()

    def flush(self) -> None:
        if self.buffer:
            self.store.put_many(self.buffer)
            self.batches += 1
        self.buffer, self.last = [], time.monotonic()


def _error_text(exc: TastelensError) -> str:
    return f"{type(exc).__module__}:{type(exc).__qualname__}\t{exc}"


def _raise_error(text: str) -> None:
    """Raise a worker's error as itself on the driver (Ray's wrappers lose the cause)."""
    name, _, message = text.partition("\t")
    module, _, qualname = name.partition(":")
    cls = getattr(importlib.import_module(module), qualname, None)
    if not (isinstance(cls, type) and issubclass(cls, TastelensError)):
        cls = TastelensError
    raise cls(message)


def run_profile_job_ray(
    dataset: Dataset,
    spec: ProfilerSpec,
    store: ProfileStore,
    users: Sequence[str],
    *,
    workers: int = 2,
    worker_cpus: float = 0.5,
    batch_size: int = 8,
    write_batch: int = 32,
    flush_s: float = 2.0,
    max_attempts: int = 2,
    on_profile: Callable[[InterestProfile, ProfileDiagnostics], None] | None = None,
    driver: Profiler | None = None,
) -> ProfileJobSummary:
    """Profile ``users`` that are not current in ``store`` on the Ray cluster this process is
    connected to (:func:`tastelens.agent.jobs.raycluster.ray_session`); see the module docstring.
    ``driver``: the driver's own Profiler from ``spec`` (for the keys only: it makes no LLM
    call); the caller keeps and closes it, else one is made and closed here."""
    import ray
    import ray.data

    started = time.perf_counter()
    own_driver = driver is None
    driver = driver or spec.profiler(spec.backend())
    try:
        selection = select_users(dataset, driver, store, users, max_attempts)
        tally = JobTally()
        if selection.todo:
            # One block per batch: the actor pool gets as many tasks as there are batches.
            blocks = -(-len(selection.todo) // batch_size)
            users_ds = ray.data.from_items([{"user": u} for u in selection.todo],
                                           override_num_blocks=blocks)
            rows = users_ds.map_batches(
                ProfileWorker, fn_constructor_kwargs={"spec": spec, "dataset": [ray.put(dataset)]},
                batch_size=batch_size, batch_format="numpy", num_cpus=worker_cpus,
                compute=ray.data.ActorPoolStrategy(size=min(workers, blocks)))
            writer = _Writer(store, write_batch, flush_s)
            seen: set[str] = set()
            for row in rows.iter_rows():
                if row["error"]:
                    _raise_error(row["error"])
                if row["llm"]:
                    tally.add_llm(json.loads(row["llm"]))  # tokens spent, even on a re-run batch
                if row["user"] in seen:
                    continue
                seen.add(row["user"])
                profile = InterestProfile.model_validate_json(row["profile"])
                diag = ProfileDiagnostics.model_validate_json(row["diagnostics"])
                writer.add(profile_write(profile, diag))
                tally.add(diag)
                if on_profile is not None:
                    on_profile(profile, diag)
            writer.flush()
        return tally.summary(selection, time.perf_counter() - started)
    finally:
        if own_driver:
            driver.backend.close()
