"""Interest profiles of evaluation histories, for the systems that start from a profile.

A profile is always built from the history being scored (the harness's ``History``: the
events before the held-out target), never from the user's full log, so the target cannot
leak into it. Two sources:

- ``facts``: the profile's deterministic parts (the profiler's own data facts: categories,
  drift, tag/decade interests, template summary) — what the profiler falls back to; free;
- ``llm``: the :class:`~tastelens.agent.profile.profiler.Profiler` now, one guided-JSON call per
  history, all of a batch sent at once so vLLM batches them; its fallback (reply unusable
  after the retry, or nothing survived validation) is counted.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import pandas as pd

from tastelens.agent.history import CategoryCooccurrence, load_entries
from tastelens.agent.profile.facts import ProfileFacts, compute_facts, facts_profile
from tastelens.agent.profile.profiler import Profiler
from tastelens.agent.profile.signals import build_signals, signals_for
from tastelens.config.pipeline import ProfileFactsConfig, ProfilerConfig
from tastelens.data.dataset import Dataset, History
from tastelens.eval.baselines.llm_usage import LLMUsage
from tastelens.llm.base import LLMBackend
from tastelens.prompts.renderer import PromptRenderer
from tastelens.schemas import Interaction, InterestProfile

ProfileSource = Literal["facts", "llm"]


def history_pairs(dataset: Dataset, history: History) -> list[tuple[str, float | None]]:
    """(item id, rating or None), oldest first: the form the ranking prompt takes."""
    ids = dataset.item_ids
    return [(ids[i], None if math.isnan(r) else float(r))
            for i, r in zip(history.items.tolist(), history.ratings.tolist())]


def history_interactions(dataset: Dataset, history: History) -> list[Interaction]:
    """The history as interactions (the form the profiler takes), oldest first."""
    ids = dataset.item_ids
    return [Interaction(user=history.user, item=ids[i],
                        rating=None if math.isnan(r) else float(r),
                        timestamp=None if t < 0 else int(t))
            for i, r, t in zip(history.items.tolist(), history.ratings.tolist(),
                               history.timestamps.tolist())]


class EvalProfiles:
    """Makes the profile of each evaluation history from the configured source.

    ``llm`` and ``renderer`` are needed for source 'llm' only; ``usage`` (stage 'profile')
    counts the model calls, schema-invalid first replies and fallbacks."""

    def __init__(self, dataset: Dataset, *, source: ProfileSource = "facts",
                 config: ProfilerConfig | None = None, llm: LLMBackend | None = None,
                 renderer: PromptRenderer | None = None, usage: LLMUsage | None = None,
                 train: pd.DataFrame | None = None,
                 cache: dict[tuple, InterestProfile] | None = None) -> None:
        self.dataset = dataset
        self.source = source
        self.config = config or ProfilerConfig()
        self.usage = usage if usage is not None else LLMUsage()
        self.facts_config: ProfileFactsConfig = self.config.facts
        self._cooc: CategoryCooccurrence | None = None
        # The miner's background rates from the training events only (held-out ones count
        # nowhere); None: the whole dataset's.
        self.signals = (build_signals(dataset, self.facts_config.mining, train)
                        if train is not None else signals_for(dataset, self.facts_config.mining))
        self._config_key = self.config.model_dump_json()
        self.cache = cache
        """Profiles already made, by :meth:`key`: a run that builds each source's profiles
        once (the profile report) hands them to every system that asks."""
        self.profiler: Profiler | None = None
        if source == "llm":
            if llm is None:
                raise ValueError("profile source 'llm' needs an LLM backend")
            self.profiler = Profiler(llm, renderer, self.config)
            self.profiler.use_signals(dataset, self.signals)

    def _cooccurrence(self) -> CategoryCooccurrence:
        if self._cooc is None:
            self._cooc = CategoryCooccurrence.from_dataset(self.dataset, self.facts_config)
        return self._cooc

    def facts(self, history: History) -> ProfileFacts:
        entries = load_entries(self.dataset, history.user,
                               history_interactions(self.dataset, history))
        return compute_facts(self.dataset, entries, self.facts_config, self._cooccurrence(),
                             self.signals)

    def key(self, history: History) -> tuple:
        """Which profile: the source, the profiler's whole config and the exact history."""
        return (self.source, self._config_key, history.user, len(history),
                int(history.items[-1]) if len(history) else -1)

    def profiles(self, histories: Sequence[History]) -> list[InterestProfile | None]:
        """One profile per history, in order; None for an empty history."""
        out: list[InterestProfile | None] = [None] * len(histories)
        rows = []
        for r, h in enumerate(histories):
            found = self.cache.get(self.key(h)) if self.cache is not None and len(h) else None
            if found is not None:
                out[r] = found
            elif len(h):
                rows.append(r)
        if self.profiler is None:
            for r in rows:
                out[r] = facts_profile(self.dataset, histories[r].user, self.facts(histories[r]))
            return self._keep(histories, rows, out)
        profiler = self.profiler
        # prepare() per history, not profile_many(): histories are not keyed by user (one
        # user may have several cases), and all of a batch goes to the server at once.
        prepared = [profiler.prepare(self.dataset, histories[r].user,
                                     history_interactions(self.dataset, histories[r]))
                    for r in rows]
        with self.usage.track("profile", profiler.backend) as stage:
            outcomes = profiler.ask(prepared, concurrency=self.config.concurrency)
            stage.outputs += len(prepared)
            for r, p, outcome in zip(rows, prepared, outcomes):
                profile, diagnostics = profiler.finish(p, outcome)
                stage.fallbacks += int(diagnostics.fallback)
                out[r] = profile
        return self._keep(histories, rows, out)

    def _keep(self, histories: Sequence[History], rows: list[int],
              out: list[InterestProfile | None]) -> list[InterestProfile | None]:
        if self.cache is not None:
            for r in rows:
                self.cache[self.key(histories[r])] = out[r]
        return out
