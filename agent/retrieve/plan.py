"""Turning one user's profile, history and constraints into retrieval queries.

Several short queries beat one long one: each fine-grained interest, each top category,
each free-text wish, each seed item, the sequence model's user state and the item-item
model's neighbourhood become their own queries,
and reciprocal-rank fusion (:mod:`tastelens.agent.retrieve.fusion`) combines the answers. This
module only decides *what* to ask; :mod:`tastelens.agent.retrieve.retriever` asks it, in batches.

The hard filters live here too, in two forms that agree: a Chroma ``where`` filter (so the
index spends its ``k`` on allowed items) and :meth:`QueryPlan.allowed`, checked against the
dataset's own item data on every hit (so an excluded category never comes back, whatever
the index or the behaviour collection, which has no metadata, returns).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tastelens.agent.history import CategoryCooccurrence, explore_fallback
from tastelens.agent.recommendation import Constraints
from tastelens.config.pipeline import ProfileFactsConfig, RetrieverConfig
from tastelens.data.dataset import Dataset
from tastelens.data.descriptors import FUNCTION_WORDS, REQUEST_WORDS, words
from tastelens.errors import UnknownIdError
from tastelens.schemas import CategoryPreference, InterestProfile
from tastelens.vectorstore.item_index import category_key, item_filter

Target = Literal["item", "behaviour", "cooccurrence", "prior", "descriptor"]
"""Where a query is answered: the item text index, the behaviour collection (Chroma), the
in-memory item-item model, the popularity prior's order, or the catalog's descriptor index
(the items carrying a descriptor, in prior order; both in memory)."""


@dataclass(frozen=True)
class Query:
    """One retrieval query: a text to embed, or a weighted mean of stored vectors.

    ``label`` goes into ``Candidate.matched``; ``weight`` is its RRF weight (negative for a
    dislike, which only demotes); ``where`` is the Chroma filter (item index only).
    """

    label: str
    weight: float
    target: Target = "item"
    text: str | None = None
    vector_ids: tuple[tuple[str, float], ...] = ()
    where: dict[str, Any] | None = None
    required: bool = False
    """Vector ids must all be in the index (seed items): a missing one is an error."""
    category: str | None = None
    """Keep only hits carrying this category (checked on the dataset after the query)."""
    fetch: int | None = None
    """Results to ask of the index; None = the retriever's over-fetch rule."""
    vector: np.ndarray | None = None
    """A ready query vector (the sequence model's user state), set by the retriever."""
    keep: int | None = None
    """Allowed hits kept; None = the retriever's per_query_k."""
    terms: tuple[str, ...] = ()
    """Target 'descriptor': the catalog descriptors whose items answer the query."""
    prior: bool = False
    """Re-order this query's hits with the retriever's popularity prior (interest queries)."""


@dataclass
class QueryPlan:
    """Everything needed to answer one user: queries, filters, demotions, size."""

    n: int
    constraints: Constraints
    seen: set[str]
    queries: list[Query] = field(default_factory=list)
    explore: list[Query] = field(default_factory=list)
    category_penalty: dict[str, float] = field(default_factory=dict)
    """Score factor per disliked catalog category (applied once per matching category)."""

    unavailable: frozenset[str] = frozenset()
    """Items that did not exist yet at the request's moment (a training case in the past:
    see :meth:`Retriever.retrieve_many`'s ``as_of``)."""

    moment: float | None = None
    """The request's moment (Unix seconds) for the decayed popularity prior; None: unknown."""

    _verdicts: dict[str, bool] = field(default_factory=dict, repr=False)

    def allowed(self, dataset: Dataset, item_id: str) -> bool:
        """The hard filters, on the dataset's item data: unseen, not excluded, categories
        and year range honoured (an item of unknown year fails any year bound)."""
        verdict = self._verdicts.get(item_id)
        if verdict is None:  # one user's queries return many of the same items
            verdict = self._verdicts[item_id] = self._check(dataset, item_id)
        return verdict

    def _check(self, dataset: Dataset, item_id: str) -> bool:
        if item_id in self.seen or item_id in self.unavailable:
            return False
        item = dataset.items.get(item_id)
        if item is None:  # an index built from an older catalog
            return False
        c = self.constraints
        if c.include_categories and not any(x in c.include_categories for x in item.categories):
            return False
        if c.exclude_categories and any(x in c.exclude_categories for x in item.categories):
            return False
        if c.year_min is not None and (item.year is None or item.year < c.year_min):
            return False
        return not (c.year_max is not None and (item.year is None or item.year > c.year_max))



class QueryPlanner:
    """Plans users' queries for one dataset and one
    :class:`~tastelens.config.pipeline.RetrieverConfig`."""

    def __init__(self, config: RetrieverConfig, dataset: Dataset,
                 facts_config: ProfileFactsConfig | None = None) -> None:
        self.config = config
        self.dataset = dataset
        self._facts_config = facts_config or ProfileFactsConfig()
        self._categories = {c.casefold(): c for it in dataset.items.values()
                            for c in it.categories}
        self._cooc: CategoryCooccurrence | None = None

    def plan(self, profile: InterestProfile, history: Sequence[Any], constraints: Constraints,
             n: int, collaborative: bool = False, cooccurrence: bool = False,
             prior: bool = False) -> QueryPlan:
        """The queries, filters and demotions for one user. With ``collaborative`` (and
        ``cooccurrence``) and a history, the sequence model's (and the item-item model's) top
        items come first; with ``prior`` and a history of at most ``prior.max_history``
        items, the popularity prior's top allowed items too. The retriever supplies their
        vectors and hits."""
        cfg, w = self.config, self.config.weights
        for seed in constraints.seed_items:
            if seed not in self.dataset.items:
                raise UnknownIdError(f"seed item {seed!r} is not in dataset "
                                     f"{self.dataset.name!r}")
        history_ids = seen_ids(history)
        # A seed is what the answer should resemble, not part of the answer.
        plan = QueryPlan(n=n, constraints=constraints, seen=set(history_ids).union(
            constraints.exclude_items, constraints.seed_items))
        where = constraint_where(constraints)
        add = plan.queries.append
        if history_ids and collaborative:
            add(Query("collaborative", w.collaborative, target="behaviour",
                      keep=cfg.collaborative_k))
        if history_ids and cooccurrence:
            add(Query("cooccurrence", w.cooccurrence, target="cooccurrence",
                      keep=cfg.collaborative_k))
        if prior and 0 <= cfg.prior.max_history and len(history_ids) <= cfg.prior.max_history:
            # A fallback for requests that say little: it counts less the more they say.
            evidence = len(history_ids) + len(constraints.seed_items) + len(constraints.queries)
            add(Query("prior", w.prior / (1 + evidence), target="prior", keep=cfg.prior.keep))
        # Pinned interests (the user's own, tastelens.taste) are asked whatever the cut.
        for interest in sorted(profile.interests, key=lambda i: (not i.pinned, -i.weight))[
                : cfg.max_interest_queries]:
            evidence = [e for e in interest.evidence if e in self.dataset.items]
            prior = cfg.popularity_prior > 0
            weight = w.interest * interest.weight * max(
                0.1, 1 + cfg.interest_trend_gain * (interest.trend or 0.0))
            fetch = cfg.prior_fetch if prior else None
            if cfg.interest_query == "evidence" and evidence:
                add(Query(interest.label, weight, where=where,
                          vector_ids=tuple((e, 1.0) for e in evidence), prior=prior,
                          fetch=fetch))
                continue
            titles = [self.dataset.items[e].title for e in evidence[::-1]][: cfg.evidence_titles]
            add(Query(interest.label, weight, text=". ".join([interest.label, *titles]),
                      where=where, prior=prior, fetch=fetch))
        top = self.profile_categories(profile)[: cfg.max_category_queries]
        top_weight = max((c.weight for c in top), default=0.0)
        for cat in top:
            add(Query(cat.category, w.category * (cat.weight / top_weight if top_weight else 1),
                      text=category_text(cat.category), where=where))
        wishes = list(dict.fromkeys(q.strip() for q in constraints.queries if q.strip()))
        for wish in wishes:
            add(Query(wish, w.wish, text=wish, where=where))
        said = wishes + [i.label for i in profile.interests if i.source == "user"]
        for term in self.descriptor_terms(said)[: cfg.max_descriptor_queries]:
            add(Query(term, w.descriptor, target="descriptor", terms=(term,)))
        for seed in dict.fromkeys(constraints.seed_items):
            add(Query(f"seed:{seed}", w.seed, vector_ids=((seed, 1.0),), where=where,
                      required=True))
        if not plan.queries and profile.summary:
            add(Query("summary", w.interest, text=profile.summary, where=where))
        self._plan_dislikes(plan, profile, where)
        self._plan_explore(plan, profile, where)
        return plan

    def descriptor_terms(self, phrases: Sequence[str]) -> list[str]:
        """The catalog descriptors that words of ``phrases`` name ("zombies" -> "zombie",
        "twist ending" -> "twist ending"): the longest run of words that is a descriptor
        wins; a word alone counts only when it can carry content (not a function word, a
        catalog category — the category filter says that — or shorter than 3 letters) and
        the descriptor is carried by at least ``descriptor_min_items`` items."""
        index = self.dataset.descriptor_index
        if not len(index):
            return []
        found: dict[str, None] = {}
        for phrase in phrases:
            toks = words(phrase)
            i = 0
            while i < len(toks):
                for n in (3, 2, 1):
                    span = toks[i:i + n]
                    if len(span) < n or (n == 1 and (
                            span[0] in FUNCTION_WORDS or span[0] in REQUEST_WORDS
                            or len(span[0]) < 3 or span[0] in self._categories)):
                        continue
                    hits = [d for d in index.find(" ".join(span))
                            if index.df(d) >= self.config.descriptor_min_items]
                    if hits:
                        found.setdefault(hits[0], None)
                        i += n
                        break
                else:
                    i += 1
        return list(found)

    def profile_categories(self, profile: InterestProfile) -> list[CategoryPreference]:
        """The profile's categories that exist in this catalog, strongest first."""
        return [c for c in profile.categories if c.category.casefold() in self._categories]

    def _plan_dislikes(self, plan: QueryPlan, profile: InterestProfile,
                       where: dict[str, Any] | None) -> None:
        cfg = self.config
        asked = 0
        for dislike in sorted(profile.dislikes, key=lambda i: -i.weight):
            category = self._categories.get(dislike.label.casefold())
            if category is not None:
                factor = 1.0 - cfg.category_dislike_penalty * dislike.weight
                plan.category_penalty[category] = min(plan.category_penalty.get(category, 1.0),
                                                      factor)
            elif asked < cfg.max_dislike_queries and cfg.weights.dislike > 0:
                asked += 1
                weight = -cfg.weights.dislike * max(dislike.weight, 0.1)
                evidence = tuple((e, 1.0) for e in dislike.evidence if e in self.dataset.items)
                plan.queries.append(Query(
                    f"dislike:{dislike.label}", weight, where=where,
                    **({"vector_ids": evidence} if evidence else {"text": dislike.label})))

    def _plan_explore(self, plan: QueryPlan, profile: InterestProfile,
                      where: dict[str, Any] | None) -> None:
        cfg = self.config.explore
        if cfg.slots == 0:
            return
        labels = list(dict.fromkeys(e.strip() for e in profile.explore_next if e.strip()))
        if not labels:
            labels = explore_fallback(self.profile_categories(profile), self._cooccurrence(),
                                      n=cfg.max_queries)
        for label in labels[: cfg.max_queries]:
            category = self._categories.get(label.casefold())
            if category is None:
                plan.explore.append(Query(label, 1.0, text=label, where=where))
            else:
                # Not a Chroma filter: a metadata filter costs ~10x an unfiltered query on
                # ml-latest-small, and the unfiltered max_fetch nearest items of the anchor
                # hold enough of any category for a few slots; it also lets every user's
                # explore queries share one batched call.
                plan.explore.append(Query(label, 1.0, text=anchor_text(profile), where=where,
                                          category=category, fetch=self.config.max_fetch))

    def _cooccurrence(self) -> CategoryCooccurrence:
        if self._cooc is None:
            self._cooc = CategoryCooccurrence.from_dataset(self.dataset, self._facts_config)
        return self._cooc


def constraint_where(constraints: Constraints) -> dict[str, Any] | None:
    """The Chroma ``where`` filter for the constraints' categories and year range.

    Exclusion uses ``$ne: True`` on the ``cat_<slug>`` keys, which also matches items that
    lack the key (verified against Chroma 1.x).
    """
    base = item_filter(constraints.include_categories, constraints.year_min,
                       constraints.year_max)
    clauses = [base] if base else []
    clauses += [{category_key(c): {"$ne": True}}
                for c in dict.fromkeys(constraints.exclude_categories)]
    return and_where(clauses)


def and_where(clauses: Sequence[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Chroma `$and` of the non-empty clauses (None when there are none)."""
    real = [c for c in clauses if c]
    if not real:
        return None
    return real[0] if len(real) == 1 else {"$and": list(real)}


def category_text(category: str) -> str:
    # Item documents read "<title>. Genres: A, B. Tags: ..." (Item.document), so a category
    # query phrased the same way lands near items that carry it.
    return f"Genres: {category}"


def anchor_text(profile: InterestProfile) -> str:
    """The user's taste in one short text: top interest labels, else top categories."""
    labels = [i.label for i in sorted(profile.interests, key=lambda i: -i.weight)[:3]]
    labels = labels or [c.category for c in profile.categories[:3]]
    return "; ".join(labels) or profile.summary or "popular"


def seen_ids(history: Sequence[Any]) -> list[str]:
    """History as item ids, oldest first (accepts ids or Interaction-like objects)."""
    return [h if isinstance(h, str) else str(h.item) for h in history]
