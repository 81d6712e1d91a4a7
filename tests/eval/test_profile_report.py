"""The profile report: hit rate against a popularity-matched base, specificity, grounding,
and the run that builds each source's profiles once."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastelens.agent.profile.grounding import content_words, is_coarse, is_supported
from tastelens.config.settings import ChromaSettings, EmbedderSettings, LLMSettings, Settings
from tastelens.data.dataset import Dataset
from tastelens.data.splits import leave_last_out
from tastelens.eval.config import EvalConfig
from tastelens.eval.profile_report import (
    grounding,
    hit_rates,
    lift_interval,
    popularity_bins,
    specificity,
)
from tastelens.eval.profile_run import run_profile_report
from tastelens.schemas import Interest, InterestProfile, Item


@pytest.mark.parametrize("label, ok", [
    ("heist", True), ("bank heists", True), ("Crime: heist, bank robbery", True),
    ("1990s heist films", True), ("spy thrillers", False), ("movies", False),
    ("2000s heist", False),
])
def test_labels_are_supported_by_their_descriptors_categories_and_decades(label, ok) -> None:
    assert is_supported(label, ["heist", "bank robbery"], ["Crime"], [1995]) is ok


def test_coarse_labels_name_only_categories_and_decades() -> None:
    cats = ["Drama", "Action", "Sci-Fi"]
    assert is_coarse("1990s Drama", cats) and is_coarse("Action / Sci-Fi, 1980s", cats)
    assert is_coarse("dramas", cats) and not is_coarse("Drama: courtroom", cats)
    assert content_words("films about heists") == ["heists"]


def dataset() -> Dataset:
    """Items 0-9 carry 'heist', 10-29 'space', 30-59 nothing; 30 users like heists."""
    items = {str(i): Item(id=str(i), title=f"Film {i}", categories=("Crime",),
                          keywords=("heist",) if i < 10 else ("space",) if i < 30 else ())
             for i in range(60)}
    rows = []
    for u in range(30):
        picks = [(u + k) % 10 for k in range(4)] + [30 + (u + k) % 30 for k in range(2)]
        rows += [(str(u), str(i), 5.0 if int(i) < 10 else 3.0, 100 * u + t)
                 for t, i in enumerate(picks)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).astype(
        {"rating": "float64", "timestamp": "int64"})
    return Dataset(name="report", items=items, interactions=frame)


def heist_profile(user: str, descriptors=("heist",), label="heist") -> InterestProfile:
    return InterestProfile(user=user, created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
                           history_hash="h", n_items=1, interests=[Interest(
                               label=label, granularity="keyword", weight=1.0,
                               descriptors=list(descriptors), evidence=["1"])])


def test_hit_rate_lift_against_popularity_matched_items() -> None:
    ds = dataset()
    split = leave_last_out(ds)
    cases = split.validation  # each user's 5th event: a catalog-wide item 30-59 (no heist)
    bins = popularity_bins(ds, split.train, 4)
    profiles = [heist_profile(c.user) for c in cases]
    hits, base = hit_rates(ds, cases, profiles, bins, top=10, draws=10)
    assert hits.sum() == sum(ds.item_ids[c.target] in {str(i) for i in range(10)}
                             for c in cases)
    assert ((0 <= base) & (base <= 1)).all()
    # a free-form label without descriptors is matched through the catalog's index
    free = [heist_profile(c.user, descriptors=(), label="heists") for c in cases]
    np.testing.assert_array_equal(hit_rates(ds, cases, free, bins, draws=10)[0], hits)
    report = lift_interval(np.array([1.0, 1.0, 0.0, 0.0]), np.array([0.25] * 4))
    assert report["hit_rate"] == 0.5 and report["lift"] == 2.0 and len(report["lift_ci"]) == 2


def test_specificity_and_grounding() -> None:
    ds = dataset()
    profiles = [heist_profile("1"), heist_profile("2"),
                heist_profile("3", label="1990s Crime", descriptors=()), None]
    spec = specificity(profiles, ds.categories)
    assert spec["users"] == 3 and spec["distinct_labels"] == 2
    assert spec["most_common_label"] == "heist" and spec["most_common_share"] == 0.6667
    assert spec["fine_share"] == 0.6667  # "1990s Crime" is a category × decade
    ground = grounding(ds, profiles)
    assert ground["labels"] == 3 and ground["supported_share"] == 0.6667


def test_run_builds_profiles_once_and_writes_the_report(tmp_path: Path, monkeypatch) -> None:
    config = EvalConfig.model_validate({
        "evaluate_on": "validation", "metrics": {"k": [10]},
        "bootstrap": {"reference": None},
        "systems": [{"name": "profile-data", "type": "llm-pipeline", "params": {
            "variant": "retrieval", "pipeline": {
                "collaborative": {"enabled": False},
                "retriever": {"max_category_queries": 0, "interest_query": "evidence",
                              "explore": {"slots": 0}}}}}]})
    settings = Settings(cache_dir=tmp_path / "cache", chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"))
    import tastelens.eval.profile_run as run

    ds = dataset()
    monkeypatch.setattr(run, "load_dataset_for", lambda config, settings: ds)
    report = run_profile_report(config, settings, tmp_path / "out")
    written = json.loads((tmp_path / "out" / "profile_report.json").read_text())
    assert written["users"] == 30 and "profile-data" in written["sources"]
    source = written["sources"]["profile-data"]
    assert source["specificity"]["users"] == 30 and source["grounding"]["supported_share"] > 0
    assert "ndcg@10" in report["retrieval"]["profile-data"]
    assert "| profile-data |" in (tmp_path / "out" / "profile_report.md").read_text()


def test_an_llm_sources_usage_is_per_evaluated_user(tmp_path: Path, monkeypatch) -> None:
    config = EvalConfig.model_validate({
        "evaluate_on": "validation", "metrics": {"k": [10]},
        "bootstrap": {"reference": None},
        "systems": [{"name": "profile-llm", "type": "llm-pipeline", "params": {
            "variant": "retrieval", "pipeline": {
                "profile_source": "llm", "collaborative": {"enabled": False},
                "retriever": {"max_category_queries": 0, "explore": {"slots": 0}}}}}]})
    settings = Settings(cache_dir=tmp_path / "cache", chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"))
    import tastelens.eval.profile_run as run

    class DataProfiles(run.EvalProfiles):  # the model's part is not what is tested here
        def __init__(self, *args, source: str, **kwargs) -> None:
            super().__init__(*args, source="facts", **kwargs)

    ds = dataset()
    monkeypatch.setattr(run, "load_dataset_for", lambda config, settings: ds)
    monkeypatch.setattr(run, "EvalProfiles", DataProfiles)
    report = run_profile_report(config, settings, tmp_path / "out", retrieval=False)
    assert report["sources"]["profile-llm"]["llm"]["n_users"] == 30  # per-user figures of 30


def test_paired_hit_rate_difference() -> None:
    from tastelens.eval.profile_report import paired_hits

    a, b = np.array([1.0, 1.0, 0.0, 1.0]), np.array([0.0, 1.0, 0.0, 0.0])
    found = paired_hits(a, b, n_resamples=200)
    assert found["delta"] == 0.5 and found["ci"][0] <= 0.5 <= found["ci"][1]
