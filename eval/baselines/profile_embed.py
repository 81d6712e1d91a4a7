"""Profile-text embedding baseline: embed a user's interest profile, rank items by cosine.

For each history the system builds the user's profile, writes it as one text (interests,
main and rising categories, summary), embeds it with the item index's own encoder and
scores every item by cosine similarity to it. Profiles are built from the evaluation
history only (never from the full user log), so the held-out item cannot leak.

``pipeline.profile_source`` (the pipeline's own config, see
:mod:`~tastelens.eval.baselines.pipeline_params`)::

    params = { pipeline = { profile_source = "llm", profiler = { adapter = "profile-lora" } } }

- ``facts`` (default): the profile's deterministic parts, computed by the profiler's own
  code (category preferences, recent-vs-long-term drift, data-derived interests, template
  summary) — the reference point an LLM profile has to beat; no model calls;
- ``llm``: the profiler now, one guided-JSON call per history (batched), optionally with a
  LoRA adapter (``pipeline.profiler.adapter``) — how the profile adapter is compared with the
  base model. Its schema-validity and fallback rates, latency and tokens go into the report
  (``diagnostics()``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from tastelens.agent.profile.facts import ProfileFacts
from tastelens.config.pipeline import PipelineConfig
from tastelens.data.dataset import History
from tastelens.eval.baselines.base import register
from tastelens.eval.baselines.embedding import (
    EmbedMeanConfig,
    EmbedMeanRecommender,
    _normalise,
)
from tastelens.eval.baselines.eval_profiles import EvalProfiles
from tastelens.eval.baselines.llm_usage import LLMUsage
from tastelens.eval.baselines.pipeline_params import (
    EVAL_STARTS,
    check_profile_source,
    moved_to_pipeline,
    pipeline_field,
    start_pipeline_at,
)
from tastelens.schemas import InterestProfile


_USED = {"profile_source", "profiler"}


class ProfileEmbedConfig(EmbedMeanConfig):
    """Config of the ``profile-embed`` system: how the profile becomes a text, and the
    pipeline's profile settings (``pipeline.profile_source``, ``pipeline.profiler``)."""

    moved = {"adapter": "pipeline.profiler.adapter", "facts": "pipeline.profiler.facts",
             **moved_to_pipeline("profile_source", "profiler")}

    max_interests: int = Field(default=8, ge=0, description="Interest labels put in the text.")
    max_categories: int = Field(default=5, ge=0, description="Top categories put in the text.")
    include_recent: bool = Field(
        default=True, description="Name the categories whose share is rising recently.")
    pipeline: PipelineConfig = pipeline_field(
        "The pipeline's config (the settings' [recommend] table) as overrides of its "
        "defaults; this system uses profile_source ('facts', the start, or 'llm': the "
        "profiler writes each profile now, one model call per history, batched) and profiler "
        "(its facts, its adapter, reply length, concurrency).", EVAL_STARTS)

    @model_validator(mode="before")
    @classmethod
    def _starts(cls, data: Any) -> Any:
        return start_pipeline_at(data, EVAL_STARTS)

    @model_validator(mode="after")
    def _profile_settings_only(self) -> ProfileEmbedConfig:
        defaults = PipelineConfig()
        for key in sorted(self.pipeline.model_fields_set - _USED):
            if getattr(self.pipeline, key) != getattr(defaults, key):
                raise ValueError(f"pipeline.{key}: profile-embed uses only the pipeline's "
                                 "profile_source and profiler")
        check_profile_source(self.pipeline)
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
        pipe = self.config.pipeline
        llm = renderer = None
        if pipe.profile_source == "llm":
            llm = self.context.resource("llm")
            renderer = self._optional("prompt_renderer")
        self.profiles_ = EvalProfiles(
            self.context.dataset, source=pipe.profile_source,
            config=pipe.profiler, llm=llm, renderer=renderer, usage=self.usage_)

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
        if self.config.pipeline.profile_source != "llm":
            return None
        return self.usage_.diagnostics()
