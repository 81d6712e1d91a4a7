"""Training the learned re-ranker: cross-fitted examples -> a LightGBM LambdaRank ensemble.

:func:`train_ranker` is what ``tastelens rank train`` and the evaluation's pipeline system
both run:

1. the cross-fitted collaborative models (every user's events before their newest ``cuts``)
   are fitted (or loaded) and published to their own behaviour collection;
2. the serving path's retriever and feature builder turn every case at the cuts into
   candidates, features and a label (:mod:`tastelens.finetune.ranker_examples`); cases given as
   ``later`` (an evaluation's validation targets) use the serving models instead. With
   ``cuts = 0`` there are no cuts and no cross-fitted models: the later cases (and their
   cold variants) are all the examples — what ``make run``'s evaluation trains on;
3. with ``llm_feature`` on and an LLM given, the LLM scores the first candidates of up to
   ``llm_cases`` cases (a seeded sample over users, each user's newest case first), in the
   re-ranker's score mode;
4. the users are split once: the ensemble is fitted on most of them with early stopping on
   the held-out ones, whose NDCG@10 against the retrieval order and the sequence model's order
   goes into the card; then ``seeds`` boosters are fitted on everyone with that many rounds
   (one ensemble without the LLM's feature, one with it when there are LLM scores).

The card records the features, the data, the parameters, the held-out metrics and the
features' importances (gain).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, ValidationError, field_validator

from tastelens.agent.rank.features import (
    FEATURES,
    LLM_FEATURE,
    FeatureBuilder,
    ItemStats,
    feature_sets,
)
from tastelens.agent.rank.learned import FORMAT_VERSION, LearnedRanker
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.base import ConfigSection, format_validation_error, read_toml
from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.finetune.ranker_examples import (
    Case,
    CaseProfiles,
    Examples,
    build_examples,
    cold_cases,
    cut_cases,
    logs_frame,
    user_logs,
)
from tastelens.llm.base import LLMBackend
from tastelens.llm.errors import LLMUnavailableError
from tastelens.runinfo import run_record
from tastelens.vectorstore.collaborative import CollaborativeModels, models_dir
from tastelens.vectorstore.item_index import ItemIndex

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``."""


class LightGBMParams(ConfigSection):
    """LambdaRank boosting parameters (lightgbm names)."""

    num_boost_round: int = Field(default=400, ge=1, description="Most boosting rounds; early "
                                                                "stopping on held-out users "
                                                                "picks fewer.")
    learning_rate: float = Field(default=0.05, gt=0.0)
    num_leaves: int = Field(default=15, ge=2)
    min_data_in_leaf: int = Field(default=50, ge=1)
    bagging_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    feature_fraction: float = Field(default=0.8, gt=0.0, le=1.0)
    lambdarank_truncation_level: int = Field(default=20, ge=1)
    early_stopping_rounds: int = Field(default=40, ge=1)


class ColdCasesConfig(ConfigSection):
    """Cold training cases: the newest case of every user again, with a history of only a
    few of their liked items (and sometimes categories they state), so the ranker also
    learns to rank for a new visitor who named a film or a genre (``finetune/ranker_examples.py``,
    ``cold_cases``)."""

    per_user: int = Field(default=1, ge=0, le=10, description="Cold variants per user; 0 = "
                                                              "none.")
    sizes: list[int] = Field(default=[0, 1, 2, 3, 5], min_length=1,
                             description="History sizes drawn for the variants (0 = only "
                                         "stated categories).")
    stated_share: float = Field(default=0.5, ge=0.0, le=1.0,
                                description="Share of the variants with a history that also "
                                            "state their top categories.")

    @field_validator("sizes")
    @classmethod
    def _sizes(cls, value: list[int]) -> list[int]:
        if any(v < 0 for v in value):
            raise ValueError("history sizes must be ≥ 0")
        return value


class RankerTrainConfig(ConfigSection):
    """How the learned re-ranker is trained (``finetune/configs/ranker.toml``)."""

    name: str = Field(default="default", min_length=1, pattern=r"^[A-Za-z0-9._-]+$",
                      description="Saved as <cache_dir>/rankers/<dataset>/<name>/.")
    cuts: int = Field(default=3, ge=0, description="Newest events per user that become "
                                                   "ranking targets (cross-fitting); 0 = "
                                                   "none: train on the later cases only (an "
                                                   "evaluation's validation targets), with no "
                                                   "cross-fitted models to fit.")
    min_history: int = Field(default=3, ge=1, description="Events a case needs before its "
                                                          "target.")
    candidates: int | None = Field(
        default=None, ge=5, description="Candidates per case; None = the pipeline's "
                                        "retriever.n_candidates.")
    holdout: float = Field(default=0.2, gt=0.0, lt=1.0,
                           description="Share of users held out for early stopping and the "
                                       "card's validation metrics.")
    seeds: int = Field(default=5, ge=1, description="Boosters per ensemble (bagging seeds).")
    seed: int = Field(default=0, description="Seed of the user split and the first booster.")
    llm_feature: bool = Field(default=True, description="Train the ensemble that reads the "
                                                        "LLM's log-probabilities too.")
    llm_cases: int | None = Field(
        default=600, ge=1, description="Cases the LLM scores (the newest first); None = all.")
    cold: ColdCasesConfig = Field(default_factory=ColdCasesConfig)
    interest_features: bool = Field(
        default=False, description="Train on the profile-interest features too (candidate "
                                   "descriptors against the profile's interests; "
                                   "agent/rank/features.py INTEREST_FEATURES).")
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)


@dataclass
class TrainingSetup:
    """What training needs from the serving setup."""

    dataset: Dataset
    settings: Settings
    pipeline: PipelineConfig
    item_index: ItemIndex
    llm: LLMBackend | None = None


def train_ranker(setup: TrainingSetup, events: pd.DataFrame, config: RankerTrainConfig, *,
                 later: Sequence[Case] = (), serving: CollaborativeModels | None = None,
                 progress: Progress | None = None) -> tuple[LearnedRanker, Examples]:
    """Train on ``events`` (see the module docstring); returns the ranker and its examples.
    ``later`` cases need ``serving``: the collaborative models fitted on ``events``."""
    examples, meta = build_training_examples(setup, events, config, later=later,
                                             serving=serving, progress=progress)
    llm_cases = 0
    if config.llm_feature and setup.llm is not None:
        llm_cases = add_llm_scores(examples, setup, config, progress)
    return fit_ranker(examples, config, llm_cases=llm_cases, progress=progress, meta={
        **meta, "llm_model": getattr(setup.llm, "model_name", None) if llm_cases else None,
        "llm_adapter": setup.pipeline.rerank.adapter if llm_cases else None}), examples


def build_training_examples(setup: TrainingSetup, events: pd.DataFrame,
                            config: RankerTrainConfig, *, later: Sequence[Case] = (),
                            serving: CollaborativeModels | None = None,
                            progress: Progress | None = None,
                            ) -> tuple[Examples, dict[str, Any]]:
    """Steps 1-2 of the module docstring: the examples, and what the card says of them."""
    if later and serving is None:
        raise ValueError("later cases need the serving models")
    dataset, pipe = setup.dataset, setup.pipeline
    n_candidates = config.candidates or pipe.retriever.n_candidates
    logs = user_logs(events, dataset)
    cold = config.cold

    def with_cold(cases: list[Case]) -> list[Case]:
        if not cold.per_user:
            return cases
        return cases + cold_cases(cases, dataset, per_user=cold.per_user, sizes=cold.sizes,
                                  stated_share=cold.stated_share, seed=config.seed)

    profiles = CaseProfiles(dataset, pipe.profiler.facts)
    if config.cuts == 0:  # the later cases alone, served by the serving models
        if not later:
            raise ConfigError("ranker cuts = 0 trains on later cases only (an evaluation's "
                              "validation targets), and there are none: set cuts ≥ 1")
        assert serving is not None
        cases = with_cold(list(later))
        examples = _examples(setup, serving, events, cases, profiles, n_candidates,
                             progress, "later cases")
        cross_tag = None
    else:
        early, cases = cut_cases(logs, config.cuts, config.min_history)
        cases = with_cold(cases)
        cross = CollaborativeModels(pipe.collaborative, dataset,
                                    work_dir=models_dir(setup.settings, dataset.name))
        cross.fit_sequences([log.items for log in early])
        examples = _examples(setup, cross, logs_frame(early, dataset), cases, profiles,
                             n_candidates, progress, "cross-fitted cases")
        cross_tag = cross.tag
        if later:
            assert serving is not None
            examples.extend(_examples(setup, serving, events, later, profiles, n_candidates,
                                      progress, "later cases"))
    return examples, {"dataset": dataset.name, "events": len(events), "users": len(logs),
                      "cold_cases": sum(c.cold for c in cases),
                      "cross_model": cross_tag,
                      "serving_model": serving.tag if serving else None,
                      "later_cases": len(later), "candidates": n_candidates}


def case_retriever(setup: TrainingSetup, models: CollaborativeModels,
                   events: pd.DataFrame | None = None) -> Retriever:
    """The serving path's retriever over ``models`` (published to their behaviour
    collection first); ``events`` are what its decayed popularity prior counts (None: the
    dataset's)."""
    index = models.behaviour_index(setup.settings)
    models.publish(index)
    pipe = setup.pipeline
    return Retriever(pipe.retriever, dataset=setup.dataset, item_index=setup.item_index,
                     behaviour_index=index, collaborative=models,
                     facts_config=pipe.profiler.facts, events=events)


def _examples(setup: TrainingSetup, models: CollaborativeModels, events: pd.DataFrame,
              cases: Sequence[Case], profiles: CaseProfiles, n_candidates: int,
              progress: Progress | None, label: str) -> Examples:
    retriever = case_retriever(setup, models, events)
    stats = ItemStats.from_events(events, setup.dataset)
    retriever.first_seen = stats.first_seen()
    builder = FeatureBuilder(setup.dataset, collaborative=models, stats=stats,
                             item_vectors=setup.item_index.embeddings,
                             encode=setup.item_index.encoder.encode)
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if progress is not None:
            progress(label, done[0], len(cases))

    return build_examples(cases, retriever=retriever, builder=builder, profiles=profiles,
                          n_candidates=n_candidates, progress=step)


def add_llm_scores(examples: Examples, setup: TrainingSetup, config: RankerTrainConfig,
                   progress: Progress | None) -> int:
    """Fill the LLM feature of the first candidates of up to ``config.llm_cases`` cases;
    returns how many cases got scores. The cases are a seeded sample spread over users:
    those with their target among the candidates first (the others teach a ranker nothing),
    each user's newest case before their older ones. Raises
    :class:`~tastelens.llm.errors.LLMUnavailableError` when the LLM scored none of them."""
    cases = examples.cases
    tiebreak = np.random.default_rng(config.seed).permutation(len(examples))
    order = sorted(range(len(examples)), key=lambda q: (
        not examples.labels[q].any(), cases[q].cold or cases[q].stop != len(cases[q].log) - 1,
        tiebreak[q]))
    chosen = order[: config.llm_cases] if config.llm_cases else order
    rerank = setup.pipeline.rerank.model_copy(update={"mode": "score"})
    reranker = Reranker(rerank, llm=setup.llm, dataset=setup.dataset)
    ids = setup.dataset.item_ids
    col = FEATURES.index(LLM_FEATURE)
    scored = 0
    reasons: dict[str, int] = {}
    step = 64
    for lo in range(0, len(chosen), step):
        part = chosen[lo:lo + step]
        reqs = [examples.requests[q] for q in part]
        histories = [[(ids[i], None if np.isnan(r) else float(r))
                      for i, r in zip(req.history.tolist(), req.ratings.tolist())]
                     for req in reqs]
        results = reranker.rerank_many([r.profile for r in reqs], histories,
                                       [r.candidates for r in reqs])
        for q, req, result in zip(part, reqs, results):
            if result.fallback:
                reasons[result.reason or "unknown"] = reasons.get(result.reason or "unknown",
                                                                  0) + 1
                continue
            shown = req.candidates[: rerank.max_candidates]
            req.llm_scores = {c.item: result.scores[c.item] for c in shown}
            examples.features[q][: len(shown), col] = [req.llm_scores[c.item] for c in shown]
            scored += 1
        if progress is not None:
            progress("LLM scores", min(lo + step, len(chosen)), len(chosen))
    if chosen and not scored:
        raise LLMUnavailableError(
            f"the LLM scored none of the {len(chosen)} cases it was asked for (fallbacks: "
            + ", ".join(f"{r} ×{n}" for r, n in reasons.items())
            + "): start it (`tastelens serve`) or train without it (`--no-llm`, "
              "llm_feature = false)")
    return scored


# -- fitting ------------------------------------------------------------------------------
def fit_ranker(examples: Examples, config: RankerTrainConfig, *, llm_cases: int,
               meta: dict[str, Any], progress: Progress | None = None) -> LearnedRanker:
    """The two ensembles and the card, from built examples; ``progress("ranker boosters",
    done, total)`` before the first booster and after each."""
    labelled = [q for q in range(len(examples)) if examples.labels[q].any()]
    if len(labelled) < 10:
        raise ValueError(f"only {len(labelled)} cases have their target among the candidates:"
                         " too few to train a ranker (more users, more cuts or more candidates)")
    users = sorted({examples.cases[q].log.user for q in labelled})
    rng = np.random.default_rng(config.seed)
    held = set(rng.choice(users, size=max(1, int(len(users) * config.holdout)),
                          replace=False).tolist())
    fit_q = [q for q in labelled if examples.cases[q].log.user not in held]
    val_q = [q for q in range(len(examples)) if examples.cases[q].log.user in held]
    cold_q = [q for q in val_q if examples.cases[q].cold]
    kinds = feature_sets(interest=config.interest_features, llm=bool(llm_cases))
    ensembles: dict[str, list[Any]] = {}
    validation: dict[str, Any] = {"users": len(held), "cases": len(val_q),
                                  "recall": float(np.mean([examples.labels[q].any()
                                                           for q in val_q])) if val_q else 0.0}
    importances: dict[str, dict[str, float]] = {}
    probes: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    boosters = [0, len(kinds) * (1 + config.seeds)]  # fitted, planned: a probe + the seeds

    def fitted(booster: Any) -> Any:
        boosters[0] += 1
        if progress is not None:
            progress("ranker boosters", *boosters)
        return booster

    if progress is not None:
        progress("ranker boosters", *boosters)
    for kind, names in kinds.items():
        cols = [FEATURES.index(n) for n in names]
        probe = fitted(_train(examples, fit_q, cols, config, config.seed,
                              valid=[q for q in val_q if examples.labels[q].any()]))
        rounds = max(probe.best_iteration or config.lightgbm.num_boost_round, 10)
        probes[kind] = lambda x, c=cols, b=probe: b.predict(x[:, c].astype(np.float64))
        validation[f"ndcg@10_{kind}"] = _ndcg(examples, val_q, probes[kind])
        if cold_q:
            validation[f"ndcg@10_{kind}_cold"] = _ndcg(examples, cold_q, probes[kind])
        validation[f"rounds_{kind}"] = rounds
        ensembles[kind] = [fitted(_train(examples, labelled, cols, config, config.seed + s,
                                         rounds=rounds)) for s in range(config.seeds)]
        gain = np.mean([b.feature_importance("gain") for b in ensembles[kind]], axis=0)
        importances[kind] = {n: round(float(g), 3) for n, g in
                             sorted(zip(names, gain), key=lambda t: -t[1])}
    if "llm" in probes:
        # The two ensembles where they differ: held-out cases the LLM scored.
        col = FEATURES.index(LLM_FEATURE)
        scored_q = [q for q in val_q if np.isfinite(examples.features[q][:, col]).any()]
        validation["llm_scored_cases"] = len(scored_q)
        for kind, probe in probes.items():
            validation[f"ndcg@10_{kind}_on_llm_scored"] = _ndcg(examples, scored_q, probe)
    validation["ndcg@10_retrieval"] = _ndcg(examples, val_q, lambda x: -x[:, 0])
    if cold_q:
        validation["cold_cases"] = len(cold_q)
        validation["ndcg@10_retrieval_cold"] = _ndcg(examples, cold_q, lambda x: -x[:, 0])
    sas = FEATURES.index("sasrec_score")
    validation["ndcg@10_sasrec"] = _ndcg(examples, val_q,
                                         lambda x: np.nan_to_num(x[:, sas], nan=-np.inf))
    card = {
        "format_version": FORMAT_VERSION, "name": config.name,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": kinds, "config": config.model_dump(mode="json"),
        "data": {**meta, "cases": len(examples), "labelled_cases": len(labelled),
                 "recall": round(examples.recall(), 4), "llm_cases": llm_cases},
        "validation": validation, "importances": importances,
    }
    return LearnedRanker(ensembles["base"], ensembles.get("llm"), card)


def _train(examples: Examples, queries: Sequence[int], cols: list[int],
           config: RankerTrainConfig, seed: int, *, rounds: int | None = None,
           valid: Sequence[int] = ()) -> Any:
    import lightgbm as lgb

    p = config.lightgbm

    def dataset(qs: Sequence[int], reference: Any = None) -> Any:
        x = np.concatenate([examples.features[q][:, cols] for q in qs]).astype(np.float64)
        y = np.concatenate([examples.labels[q] for q in qs])
        return lgb.Dataset(x, y, group=[len(examples.labels[q]) for q in qs],
                           reference=reference, free_raw_data=True)

    params = {"objective": "lambdarank", "metric": "ndcg", "eval_at": [10],
              "learning_rate": p.learning_rate, "num_leaves": p.num_leaves,
              "min_data_in_leaf": p.min_data_in_leaf, "bagging_fraction": p.bagging_fraction,
              "bagging_freq": 1, "feature_fraction": p.feature_fraction,
              "lambdarank_truncation_level": p.lambdarank_truncation_level,
              "seed": seed, "num_threads": 0, "verbose": -1}
    train = dataset(queries)
    if valid:
        return lgb.train(params, train, num_boost_round=p.num_boost_round,
                         valid_sets=[dataset(valid, train)],
                         callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)])
    return lgb.train(params, train, num_boost_round=rounds or p.num_boost_round)


def _ndcg(examples: Examples, queries: Sequence[int],
          score: Callable[[np.ndarray], np.ndarray]) -> float:
    """Mean NDCG@10 of the target over ``queries`` (0 when it is not a candidate)."""
    gains = []
    for q in queries:
        y = examples.labels[q]
        if not y.any():
            gains.append(0.0)
            continue
        s = score(examples.features[q])
        rank = int((s > s[int(np.argmax(y))]).sum())
        gains.append(1.0 / np.log2(rank + 2) if rank < 10 else 0.0)
    return round(float(np.mean(gains)), 5) if gains else 0.0


# -- the command's library side -----------------------------------------------------------
def load_ranker_config(path: Path | None, **overrides: Any) -> RankerTrainConfig:
    """The config in ``path`` (or the defaults) with ``overrides`` (None values ignored);
    every problem is one ConfigError naming the file and the key."""
    table = read_toml(path, "ranker config") if path is not None else {}
    table.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return RankerTrainConfig.model_validate(table)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(exc, "ranker config", path)) from exc


def train_serving_ranker(settings: Settings, dataset: Dataset, config: RankerTrainConfig, *,
                         llm: LLMBackend | None, progress: Progress | None = None) -> Path:
    """Everything ``tastelens rank train`` does: fit (or load) and publish the serving
    collaborative models on all of ``dataset``'s interactions, train the ranker on the
    cross-fitted cases, and save it with its card and run record where the pipeline loads
    it. Returns the ranker's folder."""
    from tastelens.agent.rank.learned import ranker_dir
    from tastelens.agent.serving import behaviour_index, collaborative_models
    from tastelens.vectorstore.encoders import encoder_from_settings

    pipe = settings.recommend
    if not pipe.collaborative.enabled:
        raise ConfigError("the learned ranker reads the collaborative models' features: set "
                          "recommend.collaborative.enabled = true")
    item_index = ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings))
    if not item_index.exists():
        raise ConfigError(f"Chroma collection {item_index.name!r} does not exist: run "
                          "`tastelens index build` first")
    serving = collaborative_models(settings, dataset, pipe, train=True)
    behaviour_index(settings, serving)
    setup = TrainingSetup(dataset=dataset, settings=settings, pipeline=pipe,
                          item_index=item_index, llm=llm)
    ranker, _ = train_ranker(setup, dataset.interactions, config, progress=progress)
    ranker.card["run"] = run_record(config.model_dump(mode="json"),
                                    pipeline=pipe.model_dump(mode="json"))
    folder = ranker_dir(settings.cache_dir, dataset.name, config.name)
    ranker.save(folder)
    return folder
