"""The profile job: resumable, incremental, failures recorded and retried."""

from __future__ import annotations

import pandas as pd
import pytest

from tastelens.agent.jobs.profile_job import UserSelection, profile_key, run_profile_job
from tastelens.agent.profile.profiler import Profiler
from tastelens.config.pipeline import ProfilerConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError
from tastelens.llm.base import ChatFailure, ChatRequest
from tastelens.llm.fake import FakeBackend
from tastelens.profile_store import ProfileStore
from tastelens.schemas import InterestProfile

from ...conftest import grounded_profile_reply


def grounded_reply(request: ChatRequest) -> str:
    """What a well-behaved model answers under the request's schema."""
    return grounded_profile_reply(request)


def make_profiler(backend: FakeBackend) -> Profiler:
    return Profiler(backend, config=ProfilerConfig(concurrency=4, batch_size=4))


def test_job_profiles_then_skips_everything_on_rerun(tiny_dataset, tmp_path):
    backend = FakeBackend(responder=grounded_reply)
    users = tiny_dataset.user_ids[:6]
    with ProfileStore(tmp_path / "p.sqlite") as store:
        first = run_profile_job(tiny_dataset, make_profiler(backend), store, users)
        assert (first.attempted, first.profiled_llm, first.fallbacks) == (6, 6, 0)
        sent = len(backend.received)
        second = run_profile_job(tiny_dataset, make_profiler(backend), store, users)
        assert (second.attempted, second.skipped_current) == (0, 6)
        assert len(backend.received) == sent  # nothing was asked again
        profile = InterestProfile.model_validate_json(store.get(users[0]).profile_json)
        assert profile.provenance.llm_used and profile.interests


def test_changed_history_recomputes_only_that_user(tiny_dataset, tmp_path):
    backend = FakeBackend(responder=grounded_reply)
    users = tiny_dataset.user_ids[:5]
    with ProfileStore(tmp_path / "p.sqlite") as store:
        run_profile_job(tiny_dataset, make_profiler(backend), store, users)
        extra = pd.DataFrame([{"user": users[2], "item": "40", "rating": 5.0,
                               "timestamp": 9_999_999_999}])
        changed = Dataset(name=tiny_dataset.name, items=tiny_dataset.items,
                          interactions=pd.concat([tiny_dataset.interactions, extra],
                                                 ignore_index=True))
        summary = run_profile_job(changed, make_profiler(backend), store, users)
        assert summary.attempted == 1 and summary.skipped_current == 4
        assert store.get(users[2]).version == 2 and store.get(users[0]).version == 1


def test_fallbacks_are_valid_recorded_and_retried_until_max_attempts(tiny_dataset, tmp_path):
    user = tiny_dataset.user_ids[0]
    with ProfileStore(tmp_path / "p.sqlite") as store:
        failing = FakeBackend(responder=lambda r: ChatFailure(kind="timeout", message="slow"))
        first = run_profile_job(tiny_dataset, make_profiler(failing), store, [user],
                                max_attempts=2)
        assert first.fallbacks == 1 and first.request_errors == 1
        assert first.fallback_reasons == {"reply unusable": 1}
        stored = store.get(user)
        assert stored.fallback
        assert not InterestProfile.model_validate_json(stored.profile_json).provenance.llm_used
        assert store.failures()[user][0] == 1
        second = run_profile_job(tiny_dataset, make_profiler(failing), store, [user],
                                 max_attempts=2)
        assert second.attempted == 1 and store.failures()[user][0] == 2
        third = run_profile_job(tiny_dataset, make_profiler(failing), store, [user],
                                max_attempts=2)
        assert third.attempted == 0 and third.skipped_given_up == 1
        healed = run_profile_job(tiny_dataset, make_profiler(FakeBackend(responder=grounded_reply)),
                                 store, [user], max_attempts=3)
        assert healed.profiled_llm == 1 and store.failures() == {}


def test_interrupted_job_resumes_without_redoing_or_losing(tiny_dataset, tmp_path):
    users = tiny_dataset.user_ids[:10]
    backend = FakeBackend(responder=grounded_reply)
    stored: list[str] = []

    def crash_after_five(profile, _diag):
        stored.append(profile.user)
        if len(stored) == 5:
            raise KeyboardInterrupt

    with ProfileStore(tmp_path / "p.sqlite") as store:
        with pytest.raises(KeyboardInterrupt):
            run_profile_job(tiny_dataset, make_profiler(backend), store, users,
                            on_profile=crash_after_five)
        assert sorted(store.users()) == sorted(stored)
        resumed = run_profile_job(tiny_dataset, make_profiler(backend), store, users)
        assert resumed.skipped_current == 5 and resumed.attempted == 5
        assert sorted(store.users()) == sorted(users)
        assert all(store.get(u).version == 1 for u in users)


def test_profile_key_tracks_model_and_prompt(tiny_dataset):
    profiler = make_profiler(FakeBackend())
    key = profile_key(profiler, tiny_dataset, "1")
    assert key.history_hash and key.prompt_version == profiler.renderer.prompt_version


@pytest.mark.parametrize("text, kind", [("all", "all"), ("1,2", "ids"), ("sample 3", "sample")])
def test_user_selection_parse(text, kind):
    assert UserSelection.parse(text).kind == kind


@pytest.mark.parametrize("text", ["sample", "sample x", "sample 0", " , "])
def test_user_selection_rejects_bad_values(text):
    with pytest.raises(ConfigError, match="--users"):
        UserSelection.parse(text)


def test_user_selection_resolves(tiny_dataset):
    sample = UserSelection.parse("sample 5", seed=1).resolve(tiny_dataset)
    again = UserSelection.parse("sample 5", seed=1).resolve(tiny_dataset)
    assert len(sample) == 5 and sample == again
    with pytest.raises(UnknownIdError, match="'nope'"):
        UserSelection.parse("1,nope").resolve(tiny_dataset)
