"""The pipeline's own config inside an eval system's config.

A system that runs parts of the recommendation pipeline (``llm-pipeline``, ``profile-embed``)
reads them from one key of its params, ``pipeline``: the pipeline's config
(:class:`~tastelens.config.pipeline.PipelineConfig`, the ``[recommend]`` table of the
settings) as overrides of that config's defaults. A knob added to the pipeline is reachable
from an eval TOML at once, under the same name as in the settings::

    [[systems]]
    name = "retrieval-adapter"
    type = "llm-pipeline"
    [systems.params]
    variant = "retrieval"
    pipeline = { profile_source = "llm", profiler = { adapter = "profile-adapter" },
                 retriever = { explore = { slots = 0 } } }

A system starts a few keys elsewhere (:func:`start_pipeline_at`): every evaluation builds its
profiles from the evaluated history, so ``profile_source`` starts at ``"facts"`` and may be
``"llm"``, never ``"store"``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import Field

from tastelens.config.pipeline import PipelineConfig

EVAL_STARTS: dict[str, Any] = {"profile_source": "facts"}
"""Where an evaluation's pipeline starts apart from the pipeline's defaults."""


def pipeline_field(description: str, starts: Mapping[str, Any]) -> Any:
    """The ``pipeline`` field of a system's config that starts at ``starts``."""
    return Field(default_factory=lambda: PipelineConfig.model_validate(starts),
                 description=description)


def start_pipeline_at(data: Any, starts: Mapping[str, Any]) -> Any:
    """Raw params whose ``pipeline`` table holds ``starts`` under the keys it does not set
    (for a ``mode="before"`` validator; anything but a table is left to validation)."""
    if not isinstance(data, dict):
        return data
    pipeline = data.get("pipeline", {})
    if not isinstance(pipeline, dict):
        return data
    return {**data, "pipeline": {**starts, **pipeline}}


def check_profile_source(pipeline: PipelineConfig) -> None:
    """An evaluation's profiles come from the evaluated history: 'facts' or 'llm'; an
    adapter of a profiler that is never asked is a mistake."""
    if pipeline.profile_source == "store":
        raise ValueError("pipeline.profile_source: an evaluation builds each profile from the "
                         "evaluated history; use 'facts' or 'llm', not 'store'")
    if pipeline.profile_source == "facts" and pipeline.profiler.adapter is not None:
        raise ValueError("pipeline.profiler.adapter: profile_source 'facts' makes no profiler "
                         "calls, so the adapter would have no effect")


def moved_to_pipeline(*keys: str) -> dict[str, str]:
    """``moved`` entries for keys an eval config used to declare itself."""
    return {key: f"pipeline.{key}" for key in keys}
