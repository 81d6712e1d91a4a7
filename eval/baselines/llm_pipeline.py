"""The full LLM recommendation pipeline as an evaluated system (``llm-pipeline``).

Variants (``variant``):

- ``retrieval``: the :class:`~tastelens.agent.retrieve.retriever.Retriever`'s order, no model calls;
- ``rerank-score``: the :class:`~tastelens.agent.rank.reranker.Reranker` orders the candidates by
  the next-token log-probability of each candidate's label (one short request per user);
- ``rerank-listwise``: the model writes the ranked list of labels (guided JSON).

Full-catalog protocol (:meth:`score`): the same :class:`RecommendPipeline` the CLI and the
API use (explanations off) answers every history with a list of ``k`` items; they get the
descending scores k … 1 and every other item 0 (a tie below them, counted at its expected
rank, so nothing outside the list is favoured).

Candidate protocol (:meth:`score_candidates`, the target plus sampled negatives): the
candidates are first scored by the retriever's fused similarity
(:mod:`~tastelens.eval.baselines.retrieval_scores`); the retrieval variant returns that, the
re-rank variants hand the candidates to the re-ranker in that order (ties in a seeded random
order, so the target's column never leaks) and score its order — the published LLM-ranker
setup, and what the ranking adapter is trained for. A user whose re-ranking fell back gets
the retrieval scores themselves (so a fallback scores exactly as the retrieval variant).

The profile of each history (``profile_source``) is the deterministic facts profile by
default, or the profiler's now (batched). All LLM requests of a score() call go to the
backend together, so a vLLM server batches them. ``diagnostics()`` reports invalid-output
and fallback rates, latency and tokens per user.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from tastelens.agent.explain import Explainer
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.profile.profiler import Profiler
from tastelens.agent.recommendation import Candidate, Constraints
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.data.dataset import History
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.eval_profiles import (
    EvalProfiles,
    ProfileSource,
    history_interactions,
)
from tastelens.eval.baselines.llm_usage import LLMUsage, StageUsage
from tastelens.llm.base import ChatOutcome, ChatRequest, LLMBackend
from tastelens.eval.baselines.retrieval_scores import CandidateScorer
from tastelens.pipeline_config import (
    ExplainConfig,
    PipelineConfig,
    ProfilerConfig,
    RerankConfig,
    RetrieverConfig,
)
from tastelens.schemas import InterestProfile

Variant = Literal["retrieval", "rerank-score", "rerank-listwise"]
_NO_EXPLAIN = ExplainConfig(enabled=False)  # explanations do not change the ranking
MODES: dict[str, str] = {"retrieval": "none", "rerank-score": "score",
                         "rerank-listwise": "listwise"}


class LLMPipelineConfig(SystemConfig):
    """Config of the ``llm-pipeline`` system."""

    variant: Variant = Field(
        default="rerank-score",
        description="'retrieval': retriever order, no LLM; 'rerank-score' / 'rerank-listwise': "
                    "the re-ranker in that mode orders the candidates.")
    k: int = Field(
        default=30, ge=1, le=200,
        description="Full protocol: length of the pipeline's list per history (scored k..1; "
                    "the rest of the catalog ties below). At least the largest metric K.")
    retriever: RetrieverConfig = Field(default_factory=RetrieverConfig,
                                       description="The retriever's config.")
    rerank: RerankConfig = Field(
        default_factory=RerankConfig,
        description="The re-ranker's config; its mode comes from `variant`, its adapter from "
                    "`adapter`.")
    explore_slots: int = Field(
        default=2, ge=0, description="Full protocol: last positions of the k-list held by "
                                     "explored candidates (as the served pipeline does).")
    adapter: str | None = Field(
        default=None, description="LoRA adapter the re-ranker answers with (must be served: "
                                  "settings llm.adapters); None = base model.")
    profile_source: ProfileSource = Field(
        default="facts",
        description="'facts': the deterministic profile of each evaluation history (the "
                    "held-out item is never in it); 'llm': the profiler writes it now.")
    profile_adapter: str | None = Field(
        default=None, description="profile_source 'llm': LoRA adapter of the profiler.")
    profiler: ProfilerConfig = Field(
        default_factory=ProfilerConfig,
        description="The profiler's config (its adapter is `profile_adapter`).")
    behaviour: str | None = Field(
        default=None,
        description="Tag of a behaviour collection for the retriever's collaborative query: "
                    "the name of a system published earlier in this run (publish_behaviour, "
                    "e.g. 'sasrec'), so it was trained on this split's training part only.")

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
        if self.profile_source == "facts" and self.profile_adapter is not None:
            raise ValueError("profile_source 'facts' makes no profiler calls: "
                             "`profile_adapter` would have no effect")
        return self

    @property
    def uses_llm(self) -> bool:
        return self.variant != "retrieval" or self.profile_source == "llm"


@register
class LLMPipelineRecommender(Recommender):
    """The recommendation pipeline (profile → retrieve → re-rank) under both protocols."""

    name = "llm-pipeline"
    Config = LLMPipelineConfig
    # 'llm', 'prompt_renderer' and 'settings' are only built when used (see eval/resources.py).
    needs = ("item_index", "llm", "prompt_renderer", "settings")
    config: LLMPipelineConfig

    def fit(self, train: pd.DataFrame) -> None:
        """Wire the pipeline; nothing is learned from ``train`` (the item index is built from
        item text, the behaviour collection, if any, by an earlier system of the run)."""
        cfg, dataset = self.config, self.context.dataset
        self.llm_ = self.context.resource("llm") if cfg.uses_llm else NoLLM()
        renderer = self._optional("prompt_renderer") if cfg.profile_source == "llm" else None
        profiler_config = cfg.profiler
        self.usage_ = LLMUsage()
        self.profiles_ = EvalProfiles(dataset, source=cfg.profile_source,
                                      config=profiler_config, llm=self.llm_,
                                      renderer=renderer, usage=self.usage_)
        retriever = Retriever(cfg.retriever, dataset=dataset,
                              item_index=self.context.resource("item_index"),
                              behaviour_index=self._behaviour_index(),
                              facts_config=profiler_config.facts)
        self.scorer_ = CandidateScorer(retriever)
        rerank = cfg.rerank
        self.pipeline_ = RecommendPipeline(
            PipelineConfig(k=cfg.k, retriever=cfg.retriever, rerank=rerank,
                           explain=_NO_EXPLAIN, explore_slots=cfg.explore_slots,
                           profile_source="facts"),
            dataset=dataset, retriever=retriever,
            reranker=Reranker(rerank, llm=self.llm_, dataset=dataset),
            explainer=Explainer(_NO_EXPLAIN, llm=None, dataset=dataset),
            profiler=Profiler(self.llm_, renderer, profiler_config), llm=self.llm_)

    def _optional(self, name: str) -> Any:
        resources = self.context.resources
        return resources[name] if resources and name in resources else None

    def _behaviour_index(self) -> Any:
        if self.config.behaviour is None:
            return None
        from tastelens.vectorstore.collection import BehaviourIndex

        settings = self.context.resource("settings")
        return BehaviourIndex.for_dataset(settings, self.context.dataset.name,
                                          self.config.behaviour)

    # -- scoring ----------------------------------------------------------------------
    def _profiles(self, histories: Sequence[History]) -> list[InterestProfile | None]:
        self.usage_.users += len(histories)
        return self.profiles_.profiles(histories)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        dataset = self.context.dataset
        out = np.zeros((len(histories), dataset.n_items), dtype=np.float32)
        profiles = self._profiles(histories)
        rows = [r for r, p in enumerate(profiles) if p is not None]
        if not rows:
            return out
        with self.usage_.track("rerank", self.llm_ if self.config.variant != "retrieval"
                               else None) as stage:
            answers = self.pipeline_.recommend_many(
                [histories[r].user for r in rows], k=self.config.k,
                profiles=[profiles[r] for r in rows],
                histories=[history_interactions(dataset, histories[r]) for r in rows])
            if self.config.variant != "retrieval":
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
        rerank = self.pipeline_.reranker.config
        stage.outputs += 1
        stage.prompts += rerank.permutations
        stage.fallbacks += int(fallback)
        if rerank.mode == "score" and fallback and reason and "no logprobs" in reason:
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

