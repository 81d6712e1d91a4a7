"""The learned ranker: fitting an ensemble that learns an informative feature, saving and
loading it (refusing a mismatched card), and the re-rank stage with the LLM up, down, or not
part of the ranker (its cross-fitted training cases: tests/finetune/test_ranker_examples.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastelens.agent.rank.features import (
    BASE_FEATURES,
    FEATURES,
    INTEREST_FEATURES,
    LLM_FEATURE,
    RankRequest,
)
from tastelens.agent.rank.learned import (
    LearnedRanker,
    LearnedReranker,
    check_features,
    ranker_dir,
)
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.recommendation import Candidate
from tastelens.config.pipeline import PipelineConfig, RerankConfig
from tastelens.errors import ConfigError
from tastelens.finetune.ranker import (
    RankerTrainConfig,
    TrainingSetup,
    add_llm_scores,
    fit_ranker,
    load_ranker_config,
)
from tastelens.finetune.ranker_examples import Case, Examples, UserLog
from tastelens.llm.errors import LLMUnavailableError
from tastelens.llm.fake import FakeBackend

from ...conftest import letter_scores

SIGNAL = FEATURES.index("sasrec_score")
LLM = FEATURES.index(LLM_FEATURE)


def log(user: str, n: int) -> UserLog:
    return UserLog(user, np.arange(n), np.full(n, 4.0), np.arange(n) * 10)


def synthetic(n_cases: int = 300, n_cand: int = 20, llm: bool = False,
              seed: int = 0) -> Examples:
    """Cases whose target has a higher 'sasrec_score' (noisy) than the other candidates; with
    ``llm`` the LLM feature is the informative one instead."""
    rng = np.random.default_rng(seed)
    out = Examples()
    for q in range(n_cases):
        x = rng.normal(size=(n_cand, len(FEATURES))).astype(np.float32)
        target = int(rng.integers(n_cand))
        x[target, LLM if llm else SIGNAL] += 2.0
        if not llm:
            x[:, LLM] = np.nan
        y = np.zeros(n_cand, dtype=np.int32)
        y[target] = 1
        out.cases.append(Case(log(f"u{q % 100}", 5), 4, target))
        out.requests.append(RankRequest(history=np.arange(4), ratings=np.full(4, 4.0),
                                        timestamps=np.arange(4), profile=None,
                                        candidates=[Candidate(item=str(i), score=0.0)
                                                    for i in range(n_cand)]))
        out.features.append(x)
        out.labels.append(y)
    return out


CONFIG = RankerTrainConfig(seeds=2, lightgbm={"num_boost_round": 60, "min_data_in_leaf": 10})


def test_the_ensemble_learns_an_informative_feature() -> None:
    ranker = fit_ranker(synthetic(), CONFIG, llm_cases=0, meta={"candidates": 20})
    val = ranker.card["validation"]
    assert val["ndcg@10_base"] > val["ndcg@10_retrieval"] + 0.2
    assert next(iter(ranker.card["importances"]["base"])) == "sasrec_score"
    assert not ranker.uses_llm and len(ranker.base) == 2
    assert ranker.card["features"] == {"base": list(BASE_FEATURES)}


def test_a_ranker_trained_with_interest_features_reads_them() -> None:
    config = CONFIG.model_copy(update={"interest_features": True})
    ranker = fit_ranker(synthetic(), config, llm_cases=300, meta={})
    assert ranker.card["features"] == {
        "base": [*BASE_FEATURES, *INTEREST_FEATURES],
        "llm": [*BASE_FEATURES, *INTEREST_FEATURES, LLM_FEATURE]}
    check_features(ranker.card["features"], "card")  # a set this version computes
    with pytest.raises(ConfigError, match="another feature order"):
        check_features({"base": [*INTEREST_FEATURES, *BASE_FEATURES]}, "card")


def test_the_llm_ensemble_reads_the_llm_feature() -> None:
    calls: list[tuple[str, int, int]] = []
    ranker = fit_ranker(synthetic(llm=True), CONFIG, llm_cases=300, meta={},
                        progress=lambda *call: calls.append(call))
    # two ensembles, each a probe and 2 seeds: announced before the first booster
    assert calls == [("ranker boosters", n, 6) for n in range(7)]
    assert ranker.uses_llm
    val = ranker.card["validation"]
    assert val["ndcg@10_llm"] > val["ndcg@10_base"] + 0.2
    assert next(iter(ranker.card["importances"]["llm"])) == LLM_FEATURE


def test_too_few_labelled_cases_is_a_clear_error() -> None:
    few = synthetic(n_cases=5)
    with pytest.raises(ValueError, match="only 5 cases"):
        fit_ranker(few, CONFIG, llm_cases=0, meta={})


def test_save_load_round_trip_and_refused_cards(tmp_path) -> None:
    ranker = fit_ranker(synthetic(), CONFIG, llm_cases=0, meta={})
    x = synthetic(n_cases=1, seed=9).features[0]
    ranker.save(tmp_path / "r")
    again = LearnedRanker.load(tmp_path / "r")
    np.testing.assert_allclose(again.scores(x, with_llm=False), ranker.scores(x, with_llm=False))
    assert ranker_dir(tmp_path, "any", str(tmp_path / "r")) == tmp_path / "r"
    card = json.loads((tmp_path / "r" / "card.json").read_text())
    card["features"]["base"] = ["sasrec_score", "clairvoyance"]
    (tmp_path / "r" / "card.json").write_text(json.dumps(card))
    with pytest.raises(ConfigError, match=r"unknown features \['clairvoyance'\].*rank train"):
        LearnedRanker.load(tmp_path / "r")
    with pytest.raises(ConfigError, match="missing card.json.*tastelens rank train"):
        LearnedRanker.load(tmp_path / "nothing")


class StubFeatures:
    """The FeatureBuilder's interface: a high sasrec_score for item "9" only, the LLM's
    scores in their column."""

    def __init__(self, dataset) -> None:  # noqa: ANN001
        self.dataset = dataset

    def build(self, requests):  # noqa: ANN001, ANN201
        out = []
        for r in requests:
            x = np.full((len(r.candidates), len(FEATURES)), np.nan, dtype=np.float32)
            x[:, SIGNAL] = [3.0 if c.item == "9" else -1.0 for c in r.candidates]
            if r.llm_scores:
                x[:, LLM] = [r.llm_scores.get(c.item, np.nan) for c in r.candidates]
            out.append(x)
        return out


def test_the_stage_with_the_llm_up_down_or_absent(tiny_dataset) -> None:
    with_llm = fit_ranker(synthetic(llm=True), CONFIG, llm_cases=300, meta={})
    pool = [Candidate(item=str(i), score=1.0 - i / 100) for i in (3, 9, 1, 7)]
    history = ["2", "4"]

    def stage(ranker: LearnedRanker, responder) -> LearnedReranker:  # noqa: ANN001
        llm = FakeBackend(responder=responder)
        scorer = Reranker(RerankConfig(mode="score"), llm=llm, dataset=tiny_dataset)
        return LearnedReranker(ranker, features=StubFeatures(tiny_dataset),  # type: ignore
                               llm_reranker=scorer)

    up = stage(with_llm, letter_scores).rerank_many([None], [history], [pool])[0]
    assert not up.fallback and sorted(up.order) == ["1", "3", "7", "9"]

    def down(request):  # noqa: ANN001, ANN202
        raise LLMUnavailableError("no LLM server at 127.0.0.1:1")

    failed = stage(with_llm, down).rerank_many([None], [history], [pool])[0]
    assert failed.fallback and "LLM feature unavailable" in failed.reason
    assert sorted(failed.order) == ["1", "3", "7", "9"]  # the base ensemble still ranks all

    base_only = fit_ranker(synthetic(), CONFIG, llm_cases=0, meta={})
    calls: list[object] = []
    quiet = stage(base_only, lambda r: calls.append(r) or letter_scores(r))
    result = quiet.rerank_many([None], [history], [pool])[0]
    assert not calls and not result.fallback  # a ranker without the LLM part never asks
    assert result.order[0] == "9"  # the informative feature decides


def test_ranker_config_errors_name_the_file_and_key(tmp_path) -> None:
    path = tmp_path / "ranker.toml"
    path.write_text("cuts = -1\n[lightgbm]\nnum_leavez = 3\n")
    with pytest.raises(ConfigError) as err:
        load_ranker_config(path)
    assert str(path) in str(err.value) and "'cuts'" in str(err.value)
    assert "lightgbm.num_leavez" in str(err.value)
    assert load_ranker_config(None, name="x").name == "x"


def scoring_examples(dataset, n_cases: int = 10) -> Examples:  # noqa: ANN001
    """Cases on ``dataset``'s items; the even ones have their target among the candidates."""
    ids = dataset.item_ids
    out = Examples()
    for q in range(n_cases):
        user = f"u{q}"
        out.cases.append(Case(UserLog(user, np.arange(6), np.full(6, 4.0), np.arange(6)),
                              5 - q % 2, 6))
        out.requests.append(RankRequest(history=np.arange(4), ratings=np.full(4, 4.0),
                                        timestamps=np.arange(4), profile=None,
                                        candidates=[Candidate(item=ids[i], score=0.0)
                                                    for i in range(10, 15)]))
        x = np.zeros((5, len(FEATURES)), dtype=np.float32)
        x[:, LLM] = np.nan
        out.features.append(x)
        out.labels.append(np.array([0, 0, int(q % 2 == 0), 0, 0], dtype=np.int32))
    return out


def test_llm_scores_go_to_labelled_cases_first(tiny_dataset) -> None:  # noqa: ANN001
    examples = scoring_examples(tiny_dataset)
    setup = TrainingSetup(dataset=tiny_dataset, settings=None, pipeline=PipelineConfig(),  # type: ignore[arg-type]
                          item_index=None, llm=FakeBackend(responder=letter_scores))  # type: ignore[arg-type]
    config = RankerTrainConfig(llm_cases=5)
    assert add_llm_scores(examples, setup, config, None) == 5
    scored = [q for q in range(len(examples)) if np.isfinite(examples.features[q][:, LLM]).all()]
    assert scored == [0, 2, 4, 6, 8]  # the five labelled cases, every candidate scored


def test_an_llm_that_scores_nothing_stops_training(tiny_dataset) -> None:  # noqa: ANN001
    def down(request):  # noqa: ANN001, ANN202
        raise LLMUnavailableError("no LLM server at 127.0.0.1:1")

    setup = TrainingSetup(dataset=tiny_dataset, settings=None, pipeline=PipelineConfig(),  # type: ignore[arg-type]
                          item_index=None, llm=FakeBackend(responder=down))  # type: ignore[arg-type]
    with pytest.raises(LLMUnavailableError, match="scored none of the 5 cases"):
        add_llm_scores(scoring_examples(tiny_dataset), setup, RankerTrainConfig(llm_cases=5),
                       None)
