"""The harness on the real ml-latest-small (TASTELENS_TEST_DATA), cheap systems only."""

from __future__ import annotations

import pytest

from tastelens.config.settings import Settings
from tastelens.data import load_dataset
from tastelens.eval.config import EvalConfig
from tastelens.eval.harness import evaluate

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def movielens(real_data_path):
    return load_dataset(real_data_path)


def _config(protocol: str) -> EvalConfig:
    return EvalConfig.model_validate({
        "protocol": {"kind": protocol},
        "systems": [{"name": "random", "type": "random"},
                    {"name": "popularity", "type": "popularity"}],
        "bootstrap": {"reference": "random", "n_resamples": 500}})


def test_full_protocol_on_all_users_is_cheap_and_sane(movielens, tmp_path):
    result = evaluate(_config("full"), Settings(cache_dir=tmp_path), dataset=movielens)
    p, systems = result.metrics["protocol"], result.metrics["systems"]
    assert p["users"] == 610 and p["n_items"] == 9742
    rnd, pop = systems["random"], systems["popularity"]
    # Random: HR@10 ~ 10 / ~9,600 unmasked items; the mean rank near the middle.
    assert rnd["hr@10"] < 0.01 and 4000 < rnd["mean_rank"] < 5600
    assert pop["ci"]["mrr"]["low"] > 0 and pop["ci"]["recall@20"]["low"] > 0
    assert pop["coverage@10"] < rnd["coverage@10"] and pop["novelty@10"] < rnd["novelty@10"]
    # The harness's own work (masking, ranks, top-K, diversity) stays well under a second.
    assert rnd["harness_seconds"] < 3.0 and pop["harness_seconds"] < 3.0


def test_candidates_protocol_random_hits_half_the_time_at_10_of_20(movielens, tmp_path):
    systems = evaluate(_config("candidates"), Settings(cache_dir=tmp_path),
                       dataset=movielens).metrics["systems"]
    assert systems["random"]["hr@10"] == pytest.approx(0.5, abs=0.07)
    assert systems["popularity"]["hr@10"] > 0.7
