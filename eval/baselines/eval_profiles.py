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

from tastelens.agent.profile.facts import (
    CategoryCooccurrence,
    ProfileFacts,
    compute_facts,
    facts_profile,
    load_entries,
)
from tastelens.agent.profile.profiler import Profiler
from tastelens.data.dataset import Dataset, History
from tastelens.eval.baselines.llm_usage import LLMUsage
from tastelens.llm.base import LLMBackend
from tastelens.pipeline_config import ProfileFactsConfig, ProfilerConfig
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
                 renderer: PromptRenderer | None = None, usage: LLMUsage | None = None) -> None:
        self.dataset = dataset
        self.source = source
        self.config = config or ProfilerConfig()
        self.usage = usage if usage is not None else LLMUsage()
        self.facts_config: ProfileFactsConfig = self.config.facts
        self._cooc: CategoryCooccurrence | None = None
        self.profiler: Profiler | None = None
        if source == "llm":
            if llm is None:
                raise ValueError("profile source 'llm' needs an LLM backend")
            self.profiler = Profiler(llm, renderer, self.config)

    def _cooccurrence(self) -> CategoryCooccurrence:
        if self._cooc is None:
            self._cooc = CategoryCooccurrence.from_dataset(self.dataset, self.facts_config)
        return self._cooc

    def facts(self, history: History) -> ProfileFacts:
        entries = load_entries(self.dataset, history.user,
                               history_interactions(self.dataset, history))
        return compute_facts(self.dataset, entries, self.facts_config, self._cooccurrence())

    def profiles(self, histories: Sequence[History]) -> list[InterestProfile | None]:
        """One profile per history, in order; None for an empty history."""
        rows = [r for r, h in enumerate(histories) if len(h)]
        out: list[InterestProfile | None] = [None] * len(histories)
        if self.profiler is None:
            for r in rows:
                out[r] = facts_profile(self.dataset, histories[r].user, self.facts(histories[r]))
            return out
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
        return out
