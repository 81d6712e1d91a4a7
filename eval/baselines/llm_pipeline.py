"""The full LLM recommendation pipeline as an evaluated system (``llm-pipeline``).

Variants (``variant``):

- ``retrieval``: the :class:`~tastelens.agent.retrieve.retriever.Retriever`'s order, no model calls;
- ``rerank-score``: the LLM alone: the :class:`~tastelens.agent.rank.reranker.Reranker` orders
  the first candidates by the next-token log-probability of each candidate's label (one short
  request per user), the rest follow in retrieval order;
- ``rerank-listwise``: the model writes the ranked list of labels (guided JSON);
- ``learned``: the learned ranker (:mod:`tastelens.agent.rank.learned`), trained in
  :meth:`fit` exactly as ``tastelens rank train`` trains it — on the training split's
  cross-fitted cases plus the run's labelled cases (the validation targets when the run
  evaluates on test) — with the LLM's scores as a feature when ``llm_feature`` is on.

The collaborative models (sequence model + EASE) are fitted on the split's training events
in :meth:`fit` (a checkpoint shared with the ``sasrec`` and ``ease`` systems of the run when
their configs agree) and published to their behaviour collection, so retrieval is the
serving path's. The pipeline's candidates are reported as candidate recall@N
(:meth:`candidates`); the learned ranker's card (held-out metrics, feature importances)
goes into the report (:meth:`card`).

Full-catalog protocol (:meth:`score`): the same :class:`RecommendPipeline` the CLI and the
API use (explanations off) answers every history with a list of ``k`` items; they get the
descending scores k … 1 and every other item 0 (a tie below them, counted at its expected
rank, so nothing outside the list is favoured).

Candidate protocol (:meth:`score_candidates`, the target plus sampled negatives): the
candidates are first scored by the retriever's fused similarity
(:mod:`~tastelens.eval.baselines.retrieval_scores`); the retrieval variant returns that, the
re-rank variants hand the candidates to the re-ranker in that order (ties in a seeded random
order, so the target's column never leaks) and score its order — the published LLM-ranker
setup with sampled negatives (the ranking adapter now trains on the retriever's candidates:
``eval/configs/rank-adapter.toml`` and ``tastelens eval subset``). A user whose re-ranking
fell back gets the retrieval scores themselves (so a fallback scores exactly as the
retrieval variant).

The profile of each history (``profile_source``) is the deterministic facts profile by
default, or the profiler's now (batched). All LLM requests of a score() call go to the
backend together, so a vLLM server batches them. ``diagnostics()`` reports invalid-output
and fallback rates, latency and tokens per user.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from tastelens.agent.explain import Explainer
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.profiler import Profiler
from tastelens.agent.rank.features import FeatureBuilder, ItemStats
from tastelens.agent.rank.learned import LearnedReranker
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.recommendation import Candidate, Constraints
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.models import CollaborativeConfig
from tastelens.config.pipeline import (
    ExplainConfig,
    PipelineConfig,
    ProfilerConfig,
    RerankConfig,
    RetrieverConfig,
)
from tastelens.data.dataset import History
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.eval_profiles import (
    EvalProfiles,
    ProfileSource,
    history_interactions,
)
from tastelens.eval.baselines.llm_usage import LLMUsage, StageUsage
from tastelens.eval.baselines.retrieval_scores import CandidateScorer
from tastelens.finetune.ranker import (
    RankerTrainConfig,
    TrainingSetup,
    add_llm_scores,
    build_training_examples,
    fit_ranker,
)
from tastelens.finetune.ranker_examples import Case, UserLog
from tastelens.llm.base import ChatOutcome, ChatRequest, LLMBackend
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.collaborative import CollaborativeModels

Variant = Literal["retrieval", "rerank-score", "rerank-listwise", "learned"]
_NO_EXPLAIN = ExplainConfig(enabled=False)  # explanations do not change the ranking
MODES: dict[str, str] = {"retrieval": "none", "rerank-score": "score",
                         "rerank-listwise": "listwise", "learned": "learned"}


class LLMPipelineConfig(SystemConfig):
    """Config of the ``llm-pipeline`` system."""

    moved = {"explore_slots": "retriever.explore.slots"}

    variant: Variant = Field(
        default="rerank-score",
        description="'retrieval': retriever order, no LLM; 'rerank-score' / 'rerank-listwise': "
                    "the re-ranker in that mode orders the candidates; 'learned': the learned "
                    "ranker, trained in fit().")
    k: int = Field(
        default=100, ge=1, le=200,
        description="Full protocol: length of the pipeline's list per history (scored k..1; "
                    "the rest of the catalog ties below). At least the largest metric K.")
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig,
                                       description="The retriever's config.")
    collaborative: CollaborativeConfig = Field(
        default_factory=CollaborativeConfig,
        description="The collaborative models, fitted on the split's training events.")
    ranker: RankerTrainConfig = Field(
        default_factory=RankerTrainConfig,
        description="Variant 'learned': how the ranker is trained (its `llm_feature` is this "
                    "system's).")
    llm_feature: bool = Field(
        default=False, description="Variant 'learned': train and rank with the LLM's scores "
                                   "as a feature (asks the LLM).")

    rerank: RerankConfig = Field(
        default_factory=RerankConfig,
        description="The re-ranker's config; its mode comes from `variant`, its adapter from "
                    "`adapter`.")
    adapter: str | None = Field(
        default=None, description="Adapter the re-ranker answers with (must be served: "
                                  "settings llm.adapters, or llm.merged for a merged "
                                  "checkpoint); None = base model.")
    profile_source: ProfileSource = Field(
        default="facts",
        description="'facts': the deterministic profile of each evaluation history (the "
                    "held-out item is never in it); 'llm': the profiler writes it now.")
    profile_adapter: str | None = Field(
        default=None, description="profile_source 'llm': LoRA adapter of the profiler.")
    profiler: ProfilerConfig = Field(
        default_factory=ProfilerConfig,
        description="The profiler's config (its adapter is `profile_adapter`).")

    @model_validator(mode="after")
    def _consistent(self) -> LLMPipelineConfig:
        # The sub-configs carry the effective mode and adapters (so the dumped config says
        # what ran and validates again); a different value set there is a mistake.
        mode = MODES[self.variant]
        rerank_set, profiler_set = self.rerank.model_fields_set, self.profiler.model_fields_set
        if "mode" in rerank_set and self.rerank.mode != mode:
            raise ValueError("set the re-rank mode with `variant`, not `rerank.mode`")
        if "adapter" in rerank_set and self.rerank.adapter != self.adapter:
            raise ValueError("set the re-ranker's adapter as `adapter`, not `rerank.adapter`")
        if "adapter" in profiler_set and self.profiler.adapter != self.profile_adapter:
            raise ValueError("set the profiler's adapter as `profile_adapter`")
        self.rerank = self.rerank.model_copy(update={"mode": mode, "adapter": self.adapter})
        self.profiler = self.profiler.model_copy(update={"adapter": self.profile_adapter})
        if self.variant == "retrieval" and self.adapter is not None:
            raise ValueError("variant 'retrieval' makes no re-ranker calls: `adapter` would "
                             "have no effect")
        if self.variant != "learned" and self.llm_feature:
            raise ValueError("`llm_feature` is a setting of variant 'learned'")
        if ("llm_feature" in self.ranker.model_fields_set
                and self.ranker.llm_feature != self.llm_feature):
            raise ValueError("set the ranker's LLM feature as `llm_feature`, not "
                             "`ranker.llm_feature`")
        self.ranker = self.ranker.model_copy(update={"llm_feature": self.llm_feature})
        if self.profile_source == "facts" and self.profile_adapter is not None:
            raise ValueError("profile_source 'facts' makes no profiler calls: "
                             "`profile_adapter` would have no effect")
        return self

    @property
    def uses_llm(self) -> bool:
        reranks = self.variant in ("rerank-score", "rerank-listwise") or self.llm_feature
        return reranks or self.profile_source == "llm"


@register
class LLMPipelineRecommender(Recommender):
    """The recommendation pipeline (profile → retrieve → re-rank) under both protocols."""

    name = "llm-pipeline"
    Config = LLMPipelineConfig
    # 'llm', 'prompt_renderer' and 'settings' are only built when used (see eval/resources.py).
    needs = ("item_index", "llm", "prompt_renderer", "settings")
    config: LLMPipelineConfig

    def fit(self, train: pd.DataFrame) -> None:
        """Fit the collaborative models on ``train`` and wire the pipeline; variant 'learned'
        trains its ranker here too (see the module docstring)."""
        cfg, ctx = self.config, self.context
        dataset = ctx.dataset
        self.llm_ = ctx.resource("llm") if cfg.uses_llm else NoLLM()
        renderer = self._optional("prompt_renderer") if cfg.profile_source == "llm" else None
        self.usage_ = LLMUsage()
        self.profiles_ = EvalProfiles(dataset, source=cfg.profile_source, config=cfg.profiler,
                                      llm=self.llm_, renderer=renderer, usage=self.usage_,
                                      train=train, cache=self._optional("profile_cache"))
        item_index = ctx.resource("item_index")
        models = index = None
        if cfg.collaborative.enabled:
            models = CollaborativeModels(cfg.collaborative, dataset, work_dir=ctx.work_dir)
            models.fit(train)
            index = models.behaviour_index(ctx.resource("settings"))
            models.publish(index)
        counts = train["item"].map(dataset.item_index).value_counts()
        popularity = np.zeros(dataset.n_items)
        popularity[counts.index.to_numpy(dtype=np.int64)] = counts.to_numpy()
        retriever = Retriever(cfg.retriever, dataset=dataset, item_index=item_index,
                              behaviour_index=index, collaborative=models,
                              facts_config=cfg.profiler.facts, popularity=popularity)
        self.scorer_ = CandidateScorer(retriever)
        config = PipelineConfig(k=cfg.k, profiler=cfg.profiler, retriever=cfg.retriever,
                                rerank=cfg.rerank, collaborative=cfg.collaborative,
                                explain=_NO_EXPLAIN,
                                profile_source="facts")
        self.card_: dict[str, Any] | None = None
        self.candidates_: list[np.ndarray] | None = None
        if cfg.variant == "learned":
            reranker: Any = self._learned(train, config, models, item_index)
        else:
            reranker = Reranker(cfg.rerank, llm=self.llm_, dataset=dataset)
        self.pipeline_ = RecommendPipeline(
            config, dataset=dataset, retriever=retriever, reranker=reranker,
            explainer=Explainer(_NO_EXPLAIN, llm=None, dataset=dataset),
            profiler=Profiler(self.llm_, renderer, cfg.profiler), llm=self.llm_)

    def _learned(self, train: pd.DataFrame, config: PipelineConfig,
                 models: CollaborativeModels | None, item_index: Any) -> LearnedReranker:
        """Train the ranker as `tastelens rank train` does; the examples are shared by the
        run's learned systems with the same training config (only the LLM part differs)."""
        cfg, ctx = self.config, self.context
        if models is None:
            raise ConfigError("variant 'learned' needs the collaborative models "
                              "(collaborative.enabled = true)")
        setup = TrainingSetup(dataset=ctx.dataset, settings=ctx.resource("settings"),
                              pipeline=config, item_index=item_index,
                              llm=self.llm_ if cfg.llm_feature else None)
        later = [Case(UserLog(c.history.user, c.history.items, c.history.ratings.astype(float),
                              c.history.timestamps), len(c.history), c.target)
                 for c in ctx.labelled]
        key = json.dumps([_fingerprint(train), len(later), config.model_dump(mode="json"),
                          cfg.ranker.model_dump(mode="json",
                                                exclude={"llm_feature", "interest_features"})],
                         sort_keys=True)
        cache = ctx.resources if ctx.resources is not None else {}
        built = cache.setdefault("ranker_examples", {})
        if key not in built:
            built[key] = [*build_training_examples(setup, train, cfg.ranker, later=later,
                                                   serving=models), 0]
        examples, meta, llm_cases = built[key]
        if cfg.llm_feature and not llm_cases:
            with self.usage_.track("ranker training", self.llm_):
                llm_cases = built[key][2] = add_llm_scores(examples, setup, cfg.ranker, None)
        ranker = fit_ranker(examples, cfg.ranker, llm_cases=llm_cases if cfg.llm_feature else 0,
                            meta=meta)
        self.card_ = ranker.card
        features = FeatureBuilder(ctx.dataset, collaborative=models,
                                  stats=ItemStats.from_events(train, ctx.dataset),
                                  item_vectors=item_index.embeddings,
                                  encode=item_index.encoder.encode)
        scorer = Reranker(cfg.rerank.model_copy(update={"mode": "score"}), llm=self.llm_,
                          dataset=ctx.dataset) if cfg.llm_feature else None
        return LearnedReranker(ranker, features=features, llm_reranker=scorer,
                               llm_feature=cfg.llm_feature)

    def _optional(self, name: str) -> Any:
        resources = self.context.resources
        return resources[name] if resources and name in resources else None

    def card(self) -> dict[str, Any] | None:
        """Variant 'learned': the ranker's card (data, held-out metrics, importances)."""
        if self.card_ is None:
            return None
        return {k: self.card_[k] for k in ("features", "data", "validation", "importances")}

    def candidates(self) -> list[np.ndarray] | None:
        return self.candidates_

    # -- scoring ----------------------------------------------------------------------
    def _profiles(self, histories: Sequence[History]) -> list[InterestProfile | None]:
        self.usage_.users += len(histories)
        return self.profiles_.profiles(histories)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        dataset = self.context.dataset
        out = np.zeros((len(histories), dataset.n_items), dtype=np.float32)
        profiles = self._profiles(histories)
        rows = [r for r, p in enumerate(profiles) if p is not None]
        self.candidates_ = [np.zeros(0, dtype=np.int64) for _ in histories]
        if not rows:
            return out
        calls_llm = self.config.variant in ("rerank-score", "rerank-listwise") \
            or self.config.llm_feature
        with self.usage_.track("rerank", self.llm_ if calls_llm else None) as stage:
            answers, pools = self.pipeline_.recommend_with_candidates(
                [histories[r].user for r in rows], k=self.config.k,
                profiles=[profiles[r] for r in rows],
                histories=[history_interactions(dataset, histories[r]) for r in rows])
            for r, pool in zip(rows, pools):
                self.candidates_[r] = np.array(
                    [dataset.item_index[c.item] for c in pool if c.source != "explored"],
                    dtype=np.int64)
            if calls_llm:
                for answer in answers:
                    self._count(stage, answer.report.rerank_fallback,
                                answer.report.rerank_fallback_reason,
                                answer.report.invalid_ids, answer.report.appended)
        index = dataset.item_index
        for r, answer in zip(rows, answers):
            n = len(answer.items)
            for rec in answer.items:
                out[r, index[rec.item]] = n - rec.rank + 1
        return out

    def score_candidates(self, histories: Sequence[History], candidates: np.ndarray
                         ) -> np.ndarray:
        if self.config.variant == "learned":
            raise ConfigError("variant 'learned' ranks the candidates its retriever finds "
                              "(features of the retrieval stage); use the full protocol")
        dataset = self.context.dataset
        ids = [[dataset.item_ids[j] for j in row] for row in np.asarray(candidates).tolist()]
        profiles = self._profiles(histories)
        history_ids = [[dataset.item_ids[i] for i in h.items.tolist()] for h in histories]
        fused = self.scorer_.scores(profiles, history_ids, ids)
        if self.config.variant == "retrieval":
            return fused
        rows = [r for r, p in enumerate(profiles) if p is not None]
        out = np.zeros(fused.shape, dtype=np.float32)
        if not rows:
            return out
        ordered = [self._retrieval_order(histories[r], ids[r], fused[r]) for r in rows]
        with self.usage_.track("rerank", self.llm_) as stage:
            results = self.pipeline_.reranker.rerank_many(
                [profiles[r] for r in rows],
                [history_interactions(dataset, histories[r]) for r in rows],
                ordered, [Constraints() for _ in rows])
            for result in results:
                self._count(stage, result.fallback, result.reason, result.invalid_ids,
                            result.appended)
        for r, result in zip(rows, results):
            if result.fallback:  # retrieval order, ties included: exactly the retrieval variant
                out[r] = fused[r]
                continue
            position = {item: p for p, item in enumerate(dict.fromkeys(result.order))}
            n = len(ids[r])
            out[r] = [n - position[i] if i in position else 0.0 for i in ids[r]]
        return out

    def _retrieval_order(self, history: History, items: list[str], fused: np.ndarray
                         ) -> list[Candidate]:
        """Candidates by fused retrieval score; ties in an order seeded by (seed, user), so
        the protocol's column order (target first) never reaches the prompt."""
        rng = np.random.default_rng([self.context.seed, zlib.crc32(history.user.encode())])
        shuffled = rng.permutation(len(items))
        order = shuffled[np.argsort(-fused[shuffled], kind="stable")]
        return [Candidate(item=items[j], score=float(fused[j])) for j in order]

    def _count(self, stage: StageUsage, fallback: bool, reason: str | None,
               invalid_ids: int, appended: int) -> None:
        """One user's re-rank outcome. Listwise replies that fail the schema are counted by
        the backend (invalid at the first try); a score-mode reply is invalid only when it
        carries no log-probabilities. Server failures are fallbacks, not invalid output."""
        rerank = self.config.rerank
        stage.outputs += 1
        stage.prompts += rerank.permutations
        stage.fallbacks += int(fallback)
        if rerank.mode in ("score", "learned") and fallback and reason \
                and "no logprobs" in reason:
            stage.invalid += 1
        self.usage_.extra["invalid_ids"] += invalid_ids
        self.usage_.extra["appended"] += appended

    def diagnostics(self) -> dict[str, Any] | None:
        """LLM use and reliability (None for the retrieval variant on facts profiles)."""
        if not self.config.uses_llm:
            return None
        return self.usage_.diagnostics()



class NoLLM(LLMBackend):
    """The backend of variants that make no model calls (retrieval on facts profiles): the
    pipeline's parts want a backend object, and a call reaching this one is a bug."""

    name = "none"

    def _generate(self, requests: Sequence[ChatRequest], concurrency: int) -> list[ChatOutcome]:
        raise RuntimeError("llm-pipeline: this variant makes no LLM calls, yet one was made")



def _fingerprint(events: pd.DataFrame) -> str:
    """A cheap identity of a training frame (its rows' hash), for sharing examples."""
    rows = pd.util.hash_pandas_object(events[["user", "item", "timestamp"]], index=False)
    return f"{len(events)}:{int(rows.sum()) & 0xFFFFFFFFFFFF:x}"
