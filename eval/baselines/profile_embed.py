"""Profile-text embedding baseline: embed a user's interest profile, rank items by cosine.

For each history the system builds the user's profile, writes it as one text (interests,
main and rising categories, summary), embeds it with the item index's own encoder and
scores every item by cosine similarity to it. Profiles are built from the evaluation
history only (never from the full user log), so the held-out item cannot leak.

``profile_source``:

- ``facts`` (default): the profile's deterministic parts, computed by the profiler's own
  code (category preferences, recent-vs-long-term drift, data-derived interests, template
  summary) — the reference point an LLM profile has to beat; no model calls;
- ``llm``: the profiler now, one guided-JSON call per history (batched), optionally with a
  LoRA ``adapter`` — how the profile adapter is compared with the base model. Its
  schema-validity and fallback rates, latency and tokens go into the report
  (``diagnostics()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from tastelens.agent.profile.facts import ProfileFacts
from tastelens.config.pipeline import ProfileFactsConfig, ProfilerConfig
from tastelens.data.dataset import History
from tastelens.eval.baselines.base import register
from tastelens.eval.baselines.embedding import (
    EmbedMeanConfig,
    EmbedMeanRecommender,
    _normalise,
)
from tastelens.eval.baselines.eval_profiles import EvalProfiles, ProfileSource
from tastelens.eval.baselines.llm_usage import LLMUsage
from tastelens.schemas import InterestProfile


class ProfileEmbedConfig(EmbedMeanConfig):
    """Config of the ``profile-embed`` system."""

    max_interests: int = Field(default=8, ge=0, description="Interest labels put in the text.")
    max_categories: int = Field(default=5, ge=0, description="Top categories put in the text.")
    include_recent: bool = Field(
        default=True, description="Name the categories whose share is rising recently.")
    facts: ProfileFactsConfig = Field(
        default_factory=ProfileFactsConfig,
        description="How the profile facts are computed (the profiler's own settings).")
    profile_source: ProfileSource = Field(
        default="facts",
        description="'facts': the deterministic profile of each evaluation history; 'llm': "
                    "the profiler writes it now (one model call per history, batched).")
    adapter: str | None = Field(
        default=None, description="profile_source 'llm': LoRA adapter the profiler answers "
                                  "with (must be served: settings llm.adapters); None = base "
                                  "model.")
    profiler: ProfilerConfig = Field(
        default_factory=ProfilerConfig,
        description="profile_source 'llm': the profiler's config (reply length, concurrency, "
                    "validation); its adapter and facts come from `adapter` and `facts`.")

    @model_validator(mode="after")
    def _one_place_each(self) -> ProfileEmbedConfig:
        # `profiler` carries the effective adapter and facts (so the dumped config validates
        # again); a different value set there is a mistake.
        fields_set = self.profiler.model_fields_set
        if "adapter" in fields_set and self.profiler.adapter != self.adapter:
            raise ValueError("set the adapter as `adapter`, not `profiler.adapter`")
        if "facts" in fields_set and self.profiler.facts != self.facts:
            raise ValueError("set the facts config as `facts`, not `profiler.facts`")
        self.profiler = self.profiler.model_copy(update={"adapter": self.adapter,
                                                         "facts": self.facts})
        return self


def profile_text(facts: ProfileFacts, config: ProfileEmbedConfig) -> str:
    """The text of a data-facts profile (same as :func:`profile_text_of` its profile)."""
    return _text([i.label for i in facts.data_interests], [c.category for c in facts.categories],
                  [d.category for d in facts.drift if d.direction == "rising"], facts.summary,
                  config)


def profile_text_of(profile: InterestProfile, config: ProfileEmbedConfig) -> str:
    """The text that stands for a profile: interests, main and rising categories, summary."""
    return _text([i.label for i in profile.interests], [c.category for c in profile.categories],
                 [d.category for d in profile.drift if d.direction == "rising"],
                 profile.summary, config)


def _text(labels: list[str], cats: list[str], rising: list[str], summary: str,
          config: ProfileEmbedConfig) -> str:
    parts = []
    if labels[:config.max_interests]:
        parts.append("Interests: " + ", ".join(labels[:config.max_interests]))
    if cats[:config.max_categories]:
        parts.append("Genres: " + ", ".join(cats[:config.max_categories]))
    if config.include_recent and rising:
        parts.append("Lately: " + ", ".join(rising[:3]))
    parts.append(summary)
    return ". ".join(p for p in parts if p)


@register
class ProfileEmbedRecommender(EmbedMeanRecommender):
    """Cosine similarity between each item and the embedded profile text.

    Item vectors and scoring (matrix product, or Chroma's query) are ``embed-mean``'s; only
    the user vector differs: the profile text embedded by the index's own encoder.
    """

    name = "profile-embed"
    Config = ProfileEmbedConfig
    # 'llm' and 'prompt_renderer' are lazy: only profile_source 'llm' ever builds them.
    needs = ("item_index", "llm", "prompt_renderer")
    config: ProfileEmbedConfig

    def fit(self, train: pd.DataFrame) -> None:
        """The item vectors (see ``embed-mean``) and the profile maker."""
        super().fit(train)
        self.usage_ = LLMUsage()
        llm = renderer = None
        if self.config.profile_source == "llm":
            llm = self.context.resource("llm")
            renderer = self._optional("prompt_renderer")
        self.profiles_ = EvalProfiles(
            self.context.dataset, source=self.config.profile_source,
            config=self.config.profiler, llm=llm, renderer=renderer, usage=self.usage_)

    def _optional(self, name: str) -> Any:
        resources = self.context.resources
        return resources[name] if resources and name in resources else None

    def texts(self, histories: Sequence[History]) -> list[str | None]:
        """One profile text per history (None for an empty history)."""
        self.usage_.users += len(histories)
        return [None if p is None else profile_text_of(p, self.config)
                for p in self.profiles_.profiles(histories)]

    def user_vectors(self, histories: Sequence[History]) -> np.ndarray:
        """Unit-length embedded profile texts (zero for an empty history)."""
        texts = self.texts(histories)
        out = np.zeros((len(histories), self.item_vectors_.shape[1]), dtype=np.float32)
        rows = [r for r, t in enumerate(texts) if t is not None]
        if rows:
            out[rows] = self.index_.encoder.encode([texts[r] for r in rows])
        return _normalise(out)

    def diagnostics(self) -> dict[str, Any] | None:
        """Profile-writing cost and validity (profile_source 'llm' only): invalid_rate is
        the share of replies not schema-valid at the first try, fallback_rate the share of
        profiles built from the data facts instead (reply unusable after the retry, or no
        interest survived validation)."""
        if self.config.profile_source != "llm":
            return None
        return self.usage_.diagnostics()
