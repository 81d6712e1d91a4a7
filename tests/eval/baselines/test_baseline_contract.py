"""The contract every baseline honours; each system supplies only a name and a config.

Add a system by adding one entry to SYSTEMS (and to LEARNERS when it should beat random on
the tiny dataset, whose users each prefer one genre).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastelens.data.dataset import History
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import Recommender, SystemContext, build, registered

# Small enough to train in about a second on the tiny dataset (one thread: on a busy
# machine tiny ops are faster without thread hand-offs).
TINY_SASREC = {"hidden": 32, "layers": 1, "max_len": 16, "batch_size": 8, "lr": 0.01,
               "dropout": 0.6, "max_epochs": 20, "patience": 20, "progress": False,
               "threads": 1}

SYSTEMS: dict[str, dict] = {
    "random": {},
    "popularity": {},
    "itemknn": {"neighbors": 20},
    "ease": {},
    "sasrec": TINY_SASREC,
    "embed-mean": {},
    "embed-recency": {"half_life": 3.0},
    "profile-embed": {},
    # The pipeline without the LLM (no model calls) on text retrieval alone (the fake index
    # has no behaviour collection: test_llm_pipeline.py runs the collaborative and learned
    # paths on a real Chroma); exploration off: the fake index does not filter by category.
    "llm-pipeline": {"variant": "retrieval", "pipeline": {
        "retriever": {"explore": {"slots": 0}}, "collaborative": {"enabled": False}}},
}
LEARNERS = {"itemknn", "ease", "sasrec", "embed-mean", "embed-recency", "profile-embed",
            "llm-pipeline"}
OWN_CANDIDATE_RANKING = {"llm-pipeline"}
"""Systems that rank given candidates on their own (the LLM-ranker protocol), not by
gathering their full-catalog scores; test_llm_pipeline.py covers them."""


@pytest.fixture(params=sorted(SYSTEMS), scope="module")
def system(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def fitted(system: str, tiny_dataset, tiny_split, fake_item_index,
           tmp_path_factory) -> Recommender:
    """One fitted instance per system, shared by the read-only checks below."""
    context = SystemContext(dataset=tiny_dataset, work_dir=tmp_path_factory.mktemp(system),
                            seed=0, resources={"item_index": fake_item_index})
    recommender = build(system, SYSTEMS[system], context)
    recommender.fit(tiny_split.train)
    return recommender


def test_registered_under_its_name(system: str) -> None:
    cls = registered()[system]
    assert cls.name == system
    assert issubclass(cls, Recommender)


def test_config_round_trips_through_json(system: str) -> None:
    config_cls = registered()[system].Config
    config = config_cls.model_validate(SYSTEMS[system])
    again = config_cls.model_validate(json.loads(config.model_dump_json()))
    assert again == config
    for name, field in config_cls.model_fields.items():
        assert field.description, f"{system}: config field {name!r} has no description"


def test_unknown_config_key_is_rejected(system: str, make_context) -> None:
    with pytest.raises(ConfigError, match="no_such_option"):
        build(system, {**SYSTEMS[system], "no_such_option": 1}, make_context())


def test_scores_have_catalog_shape_dtype_and_are_finite(fitted: Recommender, tiny_eval) -> None:
    scores = fitted.score(tiny_eval.histories)
    assert scores.shape == (len(tiny_eval.histories), fitted.context.dataset.n_items)
    assert scores.dtype == np.float32
    assert np.isfinite(scores).all()


def test_deterministic_under_seed(system: str, fitted: Recommender, make_context, tiny_split,
                                  tiny_eval) -> None:
    again = build(system, SYSTEMS[system], make_context())  # a fresh work_dir: no checkpoint
    again.fit(tiny_split.train)
    np.testing.assert_allclose(again.score(tiny_eval.histories),
                               fitted.score(tiny_eval.histories), rtol=1e-5, atol=1e-6)


def test_score_does_not_depend_on_the_batch(fitted: Recommender, tiny_eval) -> None:
    together = fitted.score(tiny_eval.histories)
    alone = fitted.score(tiny_eval.histories[3:4])
    np.testing.assert_allclose(alone[0], together[3], rtol=1e-5, atol=1e-6)


def test_score_candidates_agrees_with_score(system: str, fitted: Recommender,
                                            tiny_eval) -> None:
    if system in OWN_CANDIDATE_RANKING:
        pytest.skip(f"{system} ranks given candidates on its own")
    histories = tiny_eval.histories[:5]
    rng = np.random.default_rng(1)
    candidates = np.stack([rng.choice(fitted.context.dataset.n_items, 7, replace=False)
                           for _ in histories])
    full = fitted.score(histories)
    got = fitted.score_candidates(histories, candidates)
    assert got.shape == candidates.shape
    np.testing.assert_allclose(got, np.take_along_axis(full, candidates, axis=1),
                               rtol=1e-5, atol=1e-6)


def test_short_and_unknown_histories_do_not_crash(fitted: Recommender, tiny_dataset) -> None:
    one = History(user="1", items=np.array([5]), ratings=np.array([4.0], np.float32),
                  timestamps=np.array([1], np.int64))
    stranger = History(user="not-in-train", items=np.array([0, 7]),
                       ratings=np.full(2, np.nan, np.float32), timestamps=np.full(2, -1))
    scores = fitted.score([one, stranger])
    assert scores.shape == (2, tiny_dataset.n_items)
    assert np.isfinite(scores).all()


def test_items_missing_from_training_still_get_scores(system: str, make_context,
                                                      tiny_split, tiny_eval) -> None:
    train = tiny_split.train
    dropped = train["item"].value_counts().index[0]  # the most popular item disappears
    recommender = build(system, SYSTEMS[system], make_context())
    recommender.fit(train[train["item"] != dropped])
    scores = recommender.score(tiny_eval.histories)
    assert np.isfinite(scores).all()


@pytest.mark.parametrize("learner", sorted(LEARNERS))
def test_learning_systems_beat_random(learner: str, make_context, tiny_split, tiny_eval) -> None:
    recommender = build(learner, SYSTEMS[learner], make_context())
    recommender.fit(tiny_split.train)
    scores = recommender.score(tiny_eval.histories)
    # Generous margins: item-item and content learners reach AUC ~0.8 and hit-rate@10 ~0.7
    # here, the tiny SASRec AUC ~0.65 and hit-rate ~0.55; chance is 0.5 and ~0.33.
    auc, rate = tiny_eval.auc(scores), tiny_eval.hit_rate(scores)
    chance = tiny_eval.random_hit_rate()
    assert auc > 0.6, f"{learner}: AUC {auc:.3f}, random ranking gives 0.5"
    assert rate > chance + 0.1, f"{learner}: hit-rate@10 {rate:.3f} vs chance {chance:.3f}"


def test_random_does_not_beat_random(make_context, tiny_eval) -> None:
    # The yardstick itself: the random system sits near AUC 0.5 (guards the AUC helper).
    auc = tiny_eval.auc(build("random", {}, make_context()).score(tiny_eval.histories))
    assert 0.4 < auc < 0.6


def test_fit_does_not_mutate_training_frame(system: str, make_context, tiny_split) -> None:
    train = tiny_split.train.copy()
    build(system, SYSTEMS[system], make_context()).fit(train)
    assert train.equals(tiny_split.train)
