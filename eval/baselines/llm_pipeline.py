"""The full LLM recommendation pipeline as an evaluated system (``llm-pipeline``).

Its params are the variant and the pipeline's own config as overrides (``pipeline``, see
:mod:`~tastelens.eval.baselines.pipeline_params`)::

    params = { variant = "rerank-score", pipeline = { rerank = { adapter = "rank-lora" } } }

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
API use (explanations off) answers every history with a list of ``pipeline.k`` items; they
get the descending scores k … 1 and every other item 0 (a tie below them, counted at its
expected rank, so nothing outside the list is favoured).

Candidate protocol (:meth:`score_candidates`, the target plus sampled negatives): the
candidates are first scored by the retriever's fused similarity
(:mod:`~tastelens.eval.baselines.retrieval_scores`); the retrieval variant returns that, the
re-rank variants hand the candidates to the re-ranker in that order (ties in a seeded random
order, so the target's column never leaks) and score its order — the published LLM-ranker
setup with sampled negatives (the ranking adapter now trains on the retriever's candidates:
``eval/configs/rank-adapter.toml`` and ``tastelens eval subset``). A user whose re-ranking
fell back gets the retrieval scores themselves (so a fallback scores exactly as the
retrieval variant).

The profile of each history (``pipeline.profile_source``) is the deterministic facts profile
by default, or the profiler's now (batched). All LLM requests of a score() call go to the
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
from tastelens.config.pipeline import (
    MAX_RETRIEVED,
    ExplainConfig,
    PipelineConfig,
    RerankConfig,
)
from tastelens.data.dataset import History
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.eval_profiles import EvalProfiles, history_interactions
from tastelens.eval.baselines.llm_usage import LLMUsage, StageUsage
from tastelens.eval.baselines.pipeline_params import (
    EVAL_STARTS,
    check_profile_source,
    moved_to_pipeline,
    pipeline_field,
    start_pipeline_at,
)
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


_STARTS: dict[str, Any] = {**EVAL_STARTS, "k": 100}


class LLMPipelineConfig(SystemConfig):
    """Config of the ``llm-pipeline`` system: the pipeline's own config (``pipeline``) and
    what only an evaluation decides (the variant, how the learned ranker is trained)."""

    moved = {"explore_slots": "pipeline.retriever.explore.slots",
             "adapter": "pipeline.rerank.adapter",
             "profile_adapter": "pipeline.profiler.adapter",
             **moved_to_pipeline("k", "retriever", "collaborative", "rerank", "profile_source",
                                 "profiler")}

    variant: Variant = Field(
        default="rerank-score",
        description="'retrieval': retriever order, no LLM; 'rerank-score' / 'rerank-listwise': "
                    "the re-ranker in that mode orders the candidates; 'learned': the learned "
                    "ranker, trained in fit(). Sets pipeline.rerank.mode.")
    pipeline: PipelineConfig = pipeline_field(
        "The pipeline's config (the settings' [recommend] table) as overrides of its "
        "defaults, except: k starts at 100 (full protocol: the list's length per history, "
        "scored k..1 with the rest of the catalog tied below; at least the largest metric K), "
        "profile_source at 'facts' (or 'llm': the profiler writes each profile now; never "
        "'store'), and explanations are off. The re-rank mode comes from `variant`; the "
        "adapters are rerank.adapter and profiler.adapter.", _STARTS)
    ranker: RankerTrainConfig = Field(
        default_factory=RankerTrainConfig,
        description="Variant 'learned': how the ranker is trained (its `llm_feature` is this "
                    "system's).")
    llm_feature: bool = Field(
        default=False, description="Variant 'learned': train and rank with the LLM's scores "
                                   "as a feature (asks the LLM).")

    @model_validator(mode="before")
    @classmethod
    def _starts(cls, data: Any) -> Any:
        return start_pipeline_at(data, _STARTS)

    @model_validator(mode="after")
    def _consistent(self) -> LLMPipelineConfig:
        # `pipeline` carries the effective mode, LLM feature and explain config (so the dumped
        # config says what ran and validates again); a different value set there is a mistake.
        pipe, mode = self.pipeline, MODES[self.variant]
        rerank_set = pipe.rerank.model_fields_set
        if pipe.k > MAX_RETRIEVED:
            raise ValueError(f"pipeline.k: at most {MAX_RETRIEVED} (the most candidates one "
                             "retrieval returns)")
        if "mode" in rerank_set and pipe.rerank.mode != mode:
            raise ValueError("pipeline.rerank.mode: set the re-rank mode with `variant`")
        if "llm_feature" in rerank_set and pipe.rerank.llm_feature != self.llm_feature:
            raise ValueError("pipeline.rerank.llm_feature: set the learned ranker's LLM feature "
                             "as `llm_feature`")
        if pipe.rerank.ranker != RerankConfig().ranker:
            raise ValueError("pipeline.rerank.ranker: variant 'learned' trains its own ranker "
                             "(see `ranker`)")
        if "explain" in pipe.model_fields_set and pipe.explain != _NO_EXPLAIN:
            raise ValueError("pipeline.explain: an evaluation ranks; explanations stay off")
        check_profile_source(pipe)
        if self.variant == "retrieval" and pipe.rerank.adapter is not None:
            raise ValueError("pipeline.rerank.adapter: variant 'retrieval' makes no re-ranker "
                             "calls, so the adapter would have no effect")
        if self.variant != "learned" and self.llm_feature:
            raise ValueError("llm_feature: a setting of variant 'learned'")
        if ("llm_feature" in self.ranker.model_fields_set
                and self.ranker.llm_feature != self.llm_feature):
            raise ValueError("ranker.llm_feature: set the ranker's LLM feature as "
                             "`llm_feature`")
        rerank = pipe.rerank.model_copy(update={"mode": mode, "llm_feature": self.llm_feature})
        self.pipeline = pipe.model_copy(update={"rerank": rerank, "explain": _NO_EXPLAIN})
        self.ranker = self.ranker.model_copy(update={"llm_feature": self.llm_feature})
        return self

    @property
    def uses_llm(self) -> bool:
        reranks = self.variant in ("rerank-score", "rerank-listwise") or self.llm_feature
        return reranks or self.pipeline.profile_source == "llm"


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
        pipe, dataset = cfg.pipeline, ctx.dataset
        self.llm_ = ctx.resource("llm") if cfg.uses_llm else NoLLM()
        llm_profiles = pipe.profile_source == "llm"
        renderer = self._optional("prompt_renderer") if llm_profiles else None
        self.usage_ = LLMUsage()
        self.profiles_ = EvalProfiles(dataset, source=pipe.profile_source, config=pipe.profiler,
                                      llm=self.llm_, renderer=renderer, usage=self.usage_,
                                      train=train, cache=self._optional("profile_cache"))
        item_index = ctx.resource("item_index")
        models = index = None
        if pipe.collaborative.enabled:
            models = CollaborativeModels(pipe.collaborative, dataset, work_dir=ctx.work_dir)
            models.fit(train)
            index = models.behaviour_index(ctx.resource("settings"))
            models.publish(index)
        retriever = Retriever(pipe.retriever, dataset=dataset, item_index=item_index,
                              behaviour_index=index, collaborative=models,
                              facts_config=pipe.profiler.facts, events=train)
        self.scorer_ = CandidateScorer(retriever)
        # The harness hands the pipeline every profile (self.profiles_); it never makes one.
        config = pipe.model_copy(update={"profile_source": "facts"})
        self.card_: dict[str, Any] | None = None
        self.candidates_: list[np.ndarray] | None = None
        if cfg.variant == "learned":
            reranker: Any = self._learned(train, config, models, item_index)
        else:
            reranker = Reranker(pipe.rerank, llm=self.llm_, dataset=dataset)
        self.pipeline_ = RecommendPipeline(
            config, dataset=dataset, retriever=retriever, reranker=reranker,
            explainer=Explainer(_NO_EXPLAIN, llm=None, dataset=dataset),
            profiler=Profiler(self.llm_, renderer, pipe.profiler), llm=self.llm_)

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
        # The LLM feature is the LLM part (added below), not a different set of examples.
        key = json.dumps([_fingerprint(train), len(later),
                          config.model_dump(mode="json", exclude={"rerank": {"llm_feature"}}),
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
        scorer = Reranker(config.rerank.model_copy(update={"mode": "score"}), llm=self.llm_,
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
                [histories[r].user for r in rows], k=self.config.pipeline.k,
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
        rerank = self.config.pipeline.rerank
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
