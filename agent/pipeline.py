"""The recommendation pipeline: profile -> retrieve -> re-rank -> place exploration -> explain.

One :class:`RecommendPipeline` object answers the CLI (``tastelens recommend``), the HTTP API,
the chat agent and the evaluation harness, so they all recommend the same way:

1. **profile** — the caller's profile, else per ``profile_source``: ``store`` reads the latest
   profile ``tastelens profile build`` wrote (used only when its history hash matches the
   history being answered for, so an evaluation's truncated history never sees a profile of
   the full one), falling back to ``on_missing_profile``; ``llm`` asks the
   :class:`~tastelens.agent.profile.profiler.Profiler` now; ``facts`` builds the deterministic
   data-facts profile without any LLM call. Computed profiles are kept in a small in-memory
   LRU keyed by (user, history hash).
2. **retrieve** — :class:`~tastelens.agent.retrieve.retriever.Retriever`: unseen candidates, hard
   constraints applied, exploration candidates marked ``source="explored"`` at the end.
3. **re-rank** — the stage ``rerank.mode`` names orders the *retrieved* candidates only
   (exploration is not the model's guess of what the user wants next): the learned ranker
   (:class:`~tastelens.agent.rank.learned.LearnedReranker`, the default) or the LLM alone
   (:class:`~tastelens.agent.rank.reranker.Reranker`). When the LLM is down, slow or its reply
   unusable the stage serves its no-LLM order (the learned ranker's base ensemble, or
   retrieval order) and says so.
4. **place exploration** — the last ``retriever.explore.slots`` positions of the final ``k``
   (never more than half of them, so k=3 shows one) hold explored candidates (in retrieval order):
   the head of the list is the user's confident taste, and exploration is visible without
   displacing it. Missing explored candidates are filled with retrieved ones and vice versa.
5. **explain** — :class:`~tastelens.agent.explain.Explainer` explains the final ``k`` only
   (``explain.enabled = false`` skips it); with ``explain.use_llm`` the model writes them,
   and invalid or failed model explanations fall back to the data template (counted).

**The user's own edits** (:mod:`tastelens.taste`: removed, pinned and disliked interests,
kept in the profile store's ``overrides`` table) are applied to the profile of a dataset
user answered from their own history (not to a given profile or history, e.g. an
evaluation's), and their disliked catalog categories are excluded from the request
(:mod:`tastelens.agent.profile.overrides`); :meth:`RecommendPipeline.edit_taste` records an
edit.

A last guard drops any item the user has seen, any excluded item and any item that breaks the
hard constraints, whatever a (swappable) retriever returned. The report holds per-stage wall
times, fallback flags, invalid-id counts and the LLM tokens spent (the difference of the
backend's counters: approximate when other requests share the backend concurrently).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from tastelens.agent.explain import Explainer
from tastelens.agent.history import (
    EmptyHistoryError,
    history_hash,
    load_entries,
    request_moment,
)
from tastelens.agent.profile.overrides import apply_overrides, override_constraints
from tastelens.agent.profile.profiler import Profiler, renderer_for_settings
from tastelens.agent.recommendation import (
    Candidate,
    Constraints,
    Explains,
    Explanation,
    PipelineReport,
    Recommendation,
    RecommendationList,
    RerankResult,
    Reranks,
    Retrieves,
)
from tastelens.agent.retrieve.plan import QueryPlan
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.agent.serving import (
    NO_COLLABORATIVE,
    UntrainedRanker,
    behaviour_index,
    build_reranker,
    collaborative_models,
)
from tastelens.config.pipeline import PipelineConfig
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError
from tastelens.llm.base import LLMBackend, ParseOutcome
from tastelens.llm.errors import LLMError
from tastelens.llm.registry import create_backend
from tastelens.profile_store import ProfileStore, default_store_path
from tastelens.schemas import Interaction, InterestProfile, ProfileReply
from tastelens.taste import TasteEdit, TasteOverrides
from tastelens.vectorstore.encoders import encoder_from_settings
from tastelens.vectorstore.item_index import ItemIndex

if TYPE_CHECKING:
    from tastelens.config.settings import Settings

_PROFILE_CACHE = 256


@dataclass
class _Request:
    """One user's request after the profile stage."""

    user: str | None
    profile: InterestProfile
    history: list[Interaction]
    constraints: Constraints
    source: str
    fallback: bool


class RecommendPipeline:
    """Wires profile, retriever, re-ranker and explainer; see the module docstring."""

    def __init__(self, config: PipelineConfig | None = None, *, dataset: Dataset,
                 retriever: Retrieves, reranker: Reranks, explainer: Explains,
                 profiler: Profiler, store: ProfileStore | None = None,
                 llm: LLMBackend | None = None, owns_llm: bool = False,
                 store_path: Path | None = None) -> None:
        self.config = config or PipelineConfig()
        self.dataset = dataset
        self.retriever = retriever
        self.reranker = reranker
        self.explainer = explainer
        self.profiler = profiler
        self.store = store
        self.store_path = store_path if store_path is not None else (
            store.path if store is not None else None)
        """The profile store's file, which also keeps the users' overrides (opened when
        there is one, created by the first edit)."""
        self._taste: ProfileStore | None = store
        self._taste_lock = threading.Lock()
        self.llm = llm or profiler.backend
        self._owns_llm = owns_llm
        self._users = frozenset(dataset.user_ids)
        self._cache: OrderedDict[tuple[str, str, str], InterestProfile] = OrderedDict()
        self._cache_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings, dataset: Dataset, llm: LLMBackend | None = None,
                      config: PipelineConfig | None = None, *,
                      missing_ranker: bool = False) -> RecommendPipeline:
        """Everything from settings: the config (``settings.recommend``), the Chroma item
        index for ``settings.embedder`` (built by ``tastelens index build``), the
        collaborative models and the learned ranker (``tastelens rank train``), the LLM
        backend (created, and closed by :meth:`close`, when ``llm`` is None) and the profile
        store. With ``missing_ranker`` (the interactive commands) a learned ranker or
        collaborative models that were never trained leave the retrieval order, or the
        text-and-popularity queries, labelled (:attr:`notices`), instead of failing."""
        config = config or settings.recommend
        index = ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings))
        models = collaborative_models(settings, dataset, config, missing=missing_ranker)
        owns = llm is None
        backend = llm or create_backend(settings)
        path = default_store_path(settings.cache_dir, dataset.name)
        # Read-only use: an absent store is not created just to find it empty.
        store = ProfileStore(path) if config.profile_source == "store" and path.is_file() \
            else None
        return cls(config, dataset=dataset,
                   retriever=Retriever(config.retriever, dataset=dataset, item_index=index,
                                       behaviour_index=behaviour_index(settings, models),
                                       collaborative=models,
                                       facts_config=config.profiler.facts),
                   reranker=build_reranker(settings, dataset, config, llm=backend,
                                           item_index=index, models=models,
                                           missing_ranker=missing_ranker),
                   explainer=Explainer(config.explain, llm=backend, dataset=dataset,
                                       item_index=index),
                   profiler=Profiler(backend, renderer_for_settings(settings), config.profiler),
                   store=store, llm=backend, owns_llm=owns, store_path=path)

    @property
    def notices(self) -> list[str]:
        """What this pipeline serves without (interactive commands built before training):
        the collaborative models, the learned ranker. Empty when everything is there."""
        out = []
        if self.config.collaborative.enabled and getattr(self.retriever, "collaborative",
                                                         True) is None:
            out.append(NO_COLLABORATIVE)
        reason = getattr(self.reranker, "reason", None)
        if isinstance(self.reranker, UntrainedRanker) and reason not in out:
            out.append(reason)
        return out

    def warm_up(self) -> None:
        """Pay one-time costs now rather than in the first request: load the retriever's
        text encoder and start (or find) the LLM server when the backend manages one."""
        warm = getattr(self.retriever, "warm_up", None)  # a stand-in retriever may have none
        if callable(warm):
            warm()
        start = getattr(self.llm, "start", None)
        if callable(start):
            start()

    def close(self) -> None:
        """Close the profile store, and the LLM backend when this pipeline created it."""
        if self.store is not None:
            self.store.close()
        if self._taste is not None and self._taste is not self.store:
            self._taste.close()
        if self._owns_llm:
            self.llm.close()

    def __enter__(self) -> RecommendPipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- profiles ---------------------------------------------------------------------
    def check_user(self, user: str) -> None:
        if user not in self._users:
            raise UnknownIdError(f"unknown user id {user!r} in dataset {self.dataset.name!r}")

    def profile_for(self, user: str, history: Sequence[Interaction] | None = None, *,
                    edited: bool = True) -> InterestProfile:
        """The profile :meth:`recommend` would use for ``user`` (and ``history``);
        ``edited=False``: the computed one, without the user's own edits."""
        if not edited and history is None:
            self.check_user(user)
            history = self.dataset.history(user)
        return self._resolve(user, None, history, Constraints()).profile

    def history_profile(self, history: Sequence[Interaction | str]) -> InterestProfile:
        """The data-facts profile of an anonymous history — a chat visitor's named films —
        computed as for any user, without an LLM call (cached like the others); the empty
        profile for an empty history."""
        events = _as_interactions(history, None)
        if not events:
            return self._empty_profile(None)
        entries = load_entries(self.dataset, "anonymous", events)
        return self._computed("anonymous", events, history_hash(entries), "facts")[0]

    def _resolve(self, user: str | None, profile: InterestProfile | None,
                 history: Sequence[Interaction | str] | None,
                 constraints: Constraints) -> _Request:
        if user is not None and history is None:
            self.check_user(user)
        events = (self.dataset.history(user) if history is None and user is not None
                  else _as_interactions(history or (), user))
        if profile is not None:
            return _Request(user, profile, events, constraints, "given", False)
        if user is not None and history is None:  # the user's own taste, as they edited it
            overrides = self.overrides_for(user)
            if not overrides.is_empty():
                request = self._resolve(user, None, events, constraints)
                categories = self.dataset.categories
                request.profile = apply_overrides(request.profile, overrides, categories)
                request.constraints = override_constraints(constraints, overrides, categories)
                return request
        if not events:
            if constraints.is_empty():
                who = f"user {user!r} has" if user is not None else "an anonymous request has"
                raise EmptyHistoryError(
                    f"{who} no history and no profile: give a profile or constraints "
                    "(queries, seed items or categories) to recommend from")
            return _Request(user, self._empty_profile(user), events, constraints, "empty", False)
        name = user or "anonymous"
        entries = load_entries(self.dataset, name, events)  # UnknownIdError for a bad item id
        digest = history_hash(entries)
        source: str = self.config.profile_source
        if source == "store" and user is not None and self.store is not None:
            stored = self.store.latest(user)
            if stored is not None and stored.key.history_hash == digest:
                found = InterestProfile.model_validate_json(stored.profile_json)
                return _Request(user, found, events, constraints, "store", False)
        if source == "store":
            source = self.config.on_missing_profile
        built, fallback = self._computed(name, events, digest, source)
        return _Request(user, built, events, constraints, source, fallback)

    def _computed(self, user: str, events: list[Interaction], digest: str,
                  source: str) -> tuple[InterestProfile, bool]:
        key = (user, digest, source)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key], False
        prepared = self.profiler.prepare(self.dataset, user, events)
        fallback = False
        if source == "llm":
            try:
                outcome = self.profiler.ask([prepared])[0]
            except LLMError as exc:  # server down: the data-facts profile still answers
                outcome = ParseOutcome[ProfileReply](error=f"LLM unavailable: {exc}")
            profile, diag = self.profiler.finish(prepared, outcome)
            fallback = diag.fallback
        else:
            profile, _ = self.profiler.finish(
                prepared, ParseOutcome[ProfileReply](error="profile_source=facts: no LLM call"))
        if not fallback:  # a failed LLM profile is retried on the next request
            with self._cache_lock:
                self._cache[key] = profile
                while len(self._cache) > _PROFILE_CACHE:
                    self._cache.popitem(last=False)
        return profile, fallback

    # -- the user's own edits ----------------------------------------------------------
    def _taste_store(self, create: bool) -> ProfileStore | None:
        with self._taste_lock:
            if self._taste is None and self.store_path is not None and (
                    create or self.store_path.is_file()):
                self._taste = ProfileStore(self.store_path)
            return self._taste

    def overrides_for(self, user: str) -> TasteOverrides:
        """The user's latest edits (empty, version 0, when none are stored)."""
        store = self._taste_store(create=False)
        return store.overrides(user) if store is not None else TasteOverrides(user=user)

    def edit_taste(self, user: str, edit: TasteEdit) -> TasteOverrides:
        """Record one edit of ``user``'s taste as the next overrides version and return it.

        ``remove`` and ``pin`` name a liked interest of the profile the user sees now;
        an edit that cannot apply raises :class:`~tastelens.errors.InvalidRequestError`,
        a stale ``expected_version`` :class:`~tastelens.profile_store.OverridesConflictError`.
        """
        self.check_user(user)
        store = self._taste_store(create=True)
        if store is None:
            raise ConfigError("this pipeline has no profile store to keep taste edits in "
                              "(build it with RecommendPipeline.from_settings)")
        events = self.dataset.history(user)
        base = self._resolve(user, None, events, Constraints()).profile
        categories = self.dataset.categories

        def change(current: TasteOverrides) -> TasteOverrides:
            seen = apply_overrides(base, current, categories).interests
            removed = {r.casefold() for r in current.removed}
            restorable = [i for i in (*base.interests, *current.pinned)
                          if i.label.casefold() in removed]
            return current.edited(edit, [*seen, *restorable], categories)

        return store.edit_overrides(user, change, expected_version=edit.expected_version)

    def _empty_profile(self, user: str | None) -> InterestProfile:
        return InterestProfile(user=user or "anonymous", dataset=self.dataset.name,
                               created_at=datetime.now(timezone.utc),
                               history_hash=history_hash([]), n_items=0)

    # -- recommending -----------------------------------------------------------------
    def recommend(self, user: str | None, *, k: int | None = None,
                  constraints: Constraints | None = None, profile: InterestProfile | None = None,
                  history: Sequence[Interaction | str] | None = None) -> RecommendationList:
        """Top-``k`` explained recommendations; see the module docstring for the stages.

        ``history`` (oldest first) replaces the dataset's events of ``user`` (an evaluation's
        training part, or a chat user's items); ``profile`` skips the profile stage. A user
        with no history needs a profile or constraints.
        """
        return self.recommend_many([user], k=k, constraints=constraints,
                                   profiles=None if profile is None else [profile],
                                   histories=None if history is None else [history])[0]

    def recommend_many(self, users: Sequence[str | None], *, k: int | None = None,
                       constraints: Constraints | None = None,
                       profiles: Sequence[InterestProfile | None] | None = None,
                       histories: Sequence[Sequence[Interaction | str] | None] | None = None,
                       ) -> list[RecommendationList]:
        """:meth:`recommend` for many users with batched retrieval, re-ranking and
        explanation (the LLM server answers a batch concurrently). Stage timings in each
        report are the batch's divided by the number of users."""
        return self.recommend_with_candidates(users, k=k, constraints=constraints,
                                              profiles=profiles, histories=histories)[0]

    def recommend_with_candidates(
            self, users: Sequence[str | None], *, k: int | None = None,
            constraints: Constraints | None = None,
            profiles: Sequence[InterestProfile | None] | None = None,
            histories: Sequence[Sequence[Interaction | str] | None] | None = None,
    ) -> tuple[list[RecommendationList], list[list[Candidate]]]:
        """:meth:`recommend_many`, plus each user's retrieved candidates in the order they
        were handed to the re-ranker (the evaluation measures their recall)."""
        started = time.perf_counter()
        k = self.config.k if k is None else k
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        constraints = constraints or Constraints()
        n_users = len(users)
        if n_users == 0:
            return [], []
        profiles = list(profiles) if profiles is not None else [None] * n_users
        histories = list(histories) if histories is not None else [None] * n_users
        if not len(profiles) == len(histories) == n_users:
            raise ConfigError("recommend_many needs one profile and one history per user")
        before = self.llm.stats.model_copy()
        timings: dict[str, float] = {}

        t = time.perf_counter()
        requests = [self._resolve(u, p, h, constraints)
                    for u, p, h in zip(users, profiles, histories)]
        timings["profile"] = time.perf_counter() - t

        t = time.perf_counter()
        retriever = self.config.retriever
        n = max(retriever.n_candidates, k + retriever.explore.slots)
        pools = self.retriever.retrieve_many([r.profile for r in requests],
                                             [[e.item for e in r.history] for r in requests],
                                             [r.constraints for r in requests], n=n,
                                             moments=[request_moment(r.history)
                                                      for r in requests])
        pools = [self._guard(r, pool) for r, pool in zip(requests, pools)]
        timings["retrieve"] = time.perf_counter() - t

        t = time.perf_counter()
        ranked = self._rerank(requests, pools)
        placed = [self._place(order, pool, k) for order, pool in zip(ranked, pools)]
        timings["rerank"] = time.perf_counter() - t

        t = time.perf_counter()
        explained = self._explain(requests, [p[0] for p in placed])
        timings["explain"] = time.perf_counter() - t
        timings["total"] = time.perf_counter() - started

        after = self.llm.stats
        out = []
        for req, pool, (final, scores), result, (expl, fallbacks) in zip(
                requests, pools, placed, ranked, explained):
            items = [Recommendation(
                item=c.item, title=self.dataset.items[c.item].title, rank=rank,
                year=self.dataset.items[c.item].year,
                categories=list(self.dataset.items[c.item].categories),
                score=float(scores.get(c.item, c.score)), source=c.source,
                explanation=expl[rank - 1] if expl else None)
                for rank, c in enumerate(final, 1)]
            report = PipelineReport(
                profile_source=req.source, profile_fallback=req.fallback,
                rerank=self._rerank_mode(req), rerank_fallback=result.fallback,
                rerank_fallback_reason=result.reason, invalid_ids=result.invalid_ids,
                appended=result.appended, explain_fallbacks=fallbacks, candidates=len(pool),
                explored=sum(c.source == "explored" for c in final),
                llm_requests=(after.requests - before.requests) // n_users,
                prompt_tokens=(after.prompt_tokens - before.prompt_tokens) // n_users,
                completion_tokens=(after.completion_tokens - before.completion_tokens) // n_users,
                timings={s: round(v / n_users, 4) for s, v in timings.items()})
            out.append(RecommendationList(user=req.user, items=items,
                                          constraints=req.constraints, report=report))
        return out, pools

    def _guard(self, request: _Request, pool: list[Candidate]) -> list[Candidate]:
        """Drop seen, excluded, duplicate and constraint-breaking items, whatever the
        retriever returned (it is swappable; these rules are the pipeline's promise)."""
        plan = QueryPlan(n=1, constraints=request.constraints,
                         seen={e.item for e in request.history}
                         | set(request.constraints.exclude_items))
        kept: dict[str, Candidate] = {}
        for c in pool:
            if c.item not in kept and plan.allowed(self.dataset, c.item):
                kept[c.item] = c
        return list(kept.values())

    def _rerank(self, requests: list[_Request], pools: list[list[Candidate]],
                ) -> list[RerankResult]:
        """The re-rank stage's order of each request's retrieved candidates; a request
        without a dataset user keeps the retrieval order when ``rerank.visitors`` says so."""
        retrieved = [[c for c in pool if c.source != "explored"] for pool in pools]
        out = [RerankResult(order=[c.item for c in cands], scores={c.item: c.score
                                                                   for c in cands})
               for cands in retrieved]  # the retrieval order, kept for visitors
        ranked = [q for q, r in enumerate(requests) if not self._keeps_retrieval(r)]
        if ranked:
            results = self.reranker.rerank_many([requests[q].profile for q in ranked],
                                                [requests[q].history for q in ranked],
                                                [retrieved[q] for q in ranked],
                                                [requests[q].constraints for q in ranked])
            for q, result in zip(ranked, results):
                out[q] = result
        return out

    def _keeps_retrieval(self, request: _Request) -> bool:
        return request.user is None and self.config.rerank.visitors == "retrieval"

    def _rerank_mode(self, request: _Request) -> str:
        return "none" if self._keeps_retrieval(request) else self.config.rerank.mode

    def _place(self, result: RerankResult, pool: list[Candidate], k: int,
               ) -> tuple[list[Candidate], dict[str, float]]:
        """Final k: re-ranked retrieved candidates, then the explored ones in the last
        ``retriever.explore.slots`` positions, at most k // 2 (either side fills the other's
        gap)."""
        by_id = {c.item: c for c in pool}
        retrieved = [by_id[i] for i in dict.fromkeys(result.order)
                     if i in by_id and by_id[i].source != "explored"]
        explored = [c for c in pool if c.source == "explored"]
        n_explore = min(self.config.retriever.explore.slots, len(explored), k // 2)
        head = retrieved[: k - n_explore]
        final = head + explored[: k - len(head)]
        return final, dict(result.scores)

    def _explain(self, requests: list[_Request], finals: list[list[Candidate]],
                 ) -> list[tuple[list[Explanation], int]]:
        if not self.config.explain.enabled:
            return [([], 0) for _ in finals]
        return self.explainer.explain_many([r.profile for r in requests],
                                           [r.history for r in requests], finals)


def _as_interactions(history: Sequence[Interaction | str], user: str | None,
                     ) -> list[Interaction]:
    name = user or "anonymous"
    return [h if isinstance(h, Interaction) else Interaction(user=name, item=str(h))
            for h in history]
