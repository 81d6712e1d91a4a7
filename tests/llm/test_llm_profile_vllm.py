"""The real vLLM server produces a valid interest profile (the CI smoke test of profiles)."""

from __future__ import annotations

import pytest

from tastelens.agent.profile.profiler import Profiler
from tastelens.llm.vllm_server import VLLMBackend
from tastelens.pipeline_config import ProfilerConfig
from tastelens.schemas import InterestProfile

pytestmark = pytest.mark.integration


def test_vllm_profile_is_valid_and_grounded(vllm_managed: VLLMBackend, tiny_dataset) -> None:
    before = vllm_managed.stats.model_copy()
    profiler = Profiler(vllm_managed, config=ProfilerConfig(max_tokens=300, concurrency=2))
    (profile, diag), = profiler.profile_many(tiny_dataset, ["1"])

    InterestProfile.model_validate_json(profile.model_dump_json())  # round-trips
    assert vllm_managed.stats.requests > before.requests  # the server really answered
    assert diag.attempts >= 1 and diag.prompt_tokens > 0
    history = {e.item for e in tiny_dataset.history("1")}
    for interest in profile.interests + profile.dislikes:
        assert interest.evidence and set(interest.evidence) <= history
    # Either the model's interests survived validation, or the fallback is flagged as such.
    assert profile.provenance.llm_used == (not diag.fallback)
    assert profile.summary
    if profile.provenance.llm_used:  # interests from the model must have survived validation
        assert profile.interests
