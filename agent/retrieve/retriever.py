"""The candidate retriever: profile + history + constraints -> a few dozen unseen candidates.

For each user the retriever asks one query per fine-grained signal (see
:mod:`tastelens.agent.retrieve.plan`):

- the profile's liked interests, top ``max_interest_queries`` by weight (label text,
  optionally followed by the titles of up to ``evidence_titles`` evidence items);
- the top ``max_category_queries`` categories;
- each free-text wish (``constraints.queries``) and each seed item (its stored vector);
- with collaborative models (:class:`~tastelens.vectorstore.collaborative.CollaborativeModels`)
  whose vectors are in a :class:`BehaviourIndex`: the sequence model's state after the
  user's history, asked of that collection by inner product (so Chroma returns the model's
  own top items), and the item-item model's (EASE) top items, computed in memory — the
  primary sources, first in every plan;

fuses the ranked answers with weighted reciprocal-rank fusion, drops seen and excluded items,
applies the hard filters (Chroma ``where`` plus a check on the dataset's own item data),
demotes dislikes, optionally re-orders for diversity (MMR), and appends exploration
candidates marked ``source="explored"``.

Dislikes demote, never filter: a dislike naming a catalog category multiplies the score of
items in it by ``1 − category_dislike_penalty · weight``; any other dislike (a low-rated
item, a disliked theme) is a negative-weight query (its evidence items' stored vectors, or
its label's text) that lowers the RRF score of the items it finds.

Exploration: up to ``explore.slots`` candidates for the profile's ``explore_next`` interests
that the exploit list does not hold. An ``explore_next`` entry naming a catalog category is
asked as the user's anchor text (top interests) filtered to that category — "the part of
this new category nearest to what they like". A profile without ``explore_next`` uses the
under-exposure rule of :func:`~tastelens.agent.history.explore_fallback`: categories
that co-occur in the catalog with the user's top categories but are under-represented in
their history.

:meth:`Retriever.retrieve_many` plans every user first, embeds all query texts in one
encoder call (texts embedded lately are kept, so a chat's next turn embeds only what is new
in it), reads all stored vectors in one call per collection and sends the queries to
Chroma in batches; it returns exactly what :meth:`Retriever.retrieve` returns per user.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import pandas as pd

from tastelens.agent.recommendation import Candidate, Constraints
from tastelens.agent.retrieve.fusion import RankedList, mmr_order, rrf_fuse
from tastelens.agent.retrieve.plan import Query, QueryPlan, QueryPlanner, seen_ids
from tastelens.config.pipeline import MAX_RETRIEVED, ProfileFactsConfig, RetrieverConfig
from tastelens.data.dataset import Dataset, item_counts
from tastelens.errors import ConfigError, UnknownIdError, VectorIndexError
from tastelens.schemas import InterestProfile
from tastelens.vectorstore.collaborative import CollaborativeModels
from tastelens.vectorstore.collection import BehaviourIndex, VectorCollection
from tastelens.vectorstore.item_index import ItemIndex
from tastelens.vectorstore.popularity import DecayedPopularity

_QUERY_BATCH = 256  # query vectors per Chroma call
_TEXT_CACHE = 4096  # query texts whose vectors are kept (384 floats each for MiniLM)
_MOMENT_CACHE_BYTES = 64 << 20  # decayed priors kept, one catalog vector per moment


class Retriever:
    """Finds unseen candidates for users: see the module docstring for the rules."""

    def __init__(self, config: RetrieverConfig | None = None, *, dataset: Dataset,
                 item_index: ItemIndex, behaviour_index: BehaviourIndex | None = None,
                 collaborative: CollaborativeModels | None = None,
                 facts_config: ProfileFactsConfig | None = None,
                 events: pd.DataFrame | None = None) -> None:
        self.config = config or RetrieverConfig()
        self.dataset = dataset
        self._events = events
        """Interactions the popularity priors count (None: the dataset's; an evaluation passes
        its training events). The all-time prior prefers the collaborative models' own counts
        (fitted on the same events)."""
        self._popularity_scores: np.ndarray | None = None
        self._decayed: DecayedPopularity | None = None
        self._decayed_at: OrderedDict[float, np.ndarray] = OrderedDict()
        self.item_index = item_index
        self.behaviour_index = behaviour_index
        """The collection holding ``collaborative``'s item vectors."""
        self.collaborative = collaborative
        self.planner = QueryPlanner(self.config, dataset, facts_config)
        self._text_cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._later: dict[float, frozenset[str]] = {}
        self.first_seen: np.ndarray | None = None
        """Unix seconds of each catalog item's first event (NaN: none), for ``as_of``
        requests; None: every item is available at any moment."""
        self._cache_lock = threading.Lock()

    def _later_than(self, moment: float | None) -> frozenset[str]:
        if moment is None or self.first_seen is None:
            return frozenset()
        cached = self._later.get(moment)
        if cached is None:
            ids = self.dataset.item_ids
            later = np.flatnonzero(self.first_seen > moment)  # NaN (untimed): always there
            cached = self._later[moment] = frozenset(ids[i] for i in later)
            if len(self._later) > 256:
                self._later.pop(next(iter(self._later)))
        return cached

    def warm_up(self) -> None:
        """Load the text encoder now, so the first query does not pay for it."""
        self.item_index.encoder.encode(["warm up"])

    # -- public API -----------------------------------------------------------------
    def retrieve(self, profile: InterestProfile, history: Sequence[str],
                 constraints: Constraints | None = None, n: int | None = None,
                 ) -> list[Candidate]:
        """Up to ``n`` candidates: exploit ones by fused score, then the explored ones."""
        return self.retrieve_many([profile], [history], constraints, n)[0]

    def retrieve_many(self, profiles: Sequence[InterestProfile],
                      histories: Sequence[Sequence[str]],
                      constraints: Constraints | Sequence[Constraints | None] | None = None,
                      n: int | None = None, *,
                      as_of: Sequence[float | None] | None = None,
                      moments: Sequence[float | None] | None = None,
                      ) -> list[list[Candidate]]:
        """:meth:`retrieve` for many users, batched; ``constraints`` is one for all users or
        one per user. ``as_of`` (Unix seconds per user; None = now) answers a request as it
        would have been answered then: items first seen later (``first_seen``) did not exist
        yet — what the learned ranker's training cases in the past need, so that a source
        preferring new items (the prior's freshness) is not judged by items of the future.
        ``moments`` (Unix seconds per user; None = unknown) are the requests' moments for the
        interest queries' decayed popularity prior (``popularity_half_life_days``); a
        request with ``as_of`` and no moment is asked at ``as_of``."""
        if len(profiles) != len(histories):
            raise ConfigError(f"retrieve_many got {len(profiles)} profiles but "
                              f"{len(histories)} histories")
        if constraints is None or isinstance(constraints, Constraints):
            per_user: list[Constraints | None] = [constraints] * len(profiles)
        else:
            per_user = list(constraints)
            if len(per_user) != len(profiles):
                raise ConfigError(f"retrieve_many got {len(per_user)} constraints for "
                                  f"{len(profiles)} profiles")
        n = self._check_n(n)
        if not profiles:
            return []
        if not self.item_index.exists():
            raise VectorIndexError(f"Chroma collection {self.item_index.name!r} does not exist: "
                              f"{self.item_index.hint}")
        collab = self.collaborative
        use_collab = (collab is not None and self.behaviour_index is not None
                      and self.behaviour_index.exists())
        use_ease = collab is not None and collab.ease is not None
        use_prior = getattr(collab, "prior", None) is not None
        plans = [self.planner.plan(p, h, c or Constraints(), n, use_collab, use_ease, use_prior)
                 for p, h, c in zip(profiles, histories, per_user)]
        if as_of is not None:
            for plan, moment in zip(plans, as_of):
                plan.unavailable = self._later_than(moment)
                plan.moment = moment
        if moments is not None:
            if len(moments) != len(plans):
                raise ConfigError(f"retrieve_many got {len(moments)} moments for "
                                  f"{len(plans)} profiles")
            for plan, moment in zip(plans, moments):
                plan.moment = moment if moment is not None else plan.moment
        indexed = [self._indices(h) for h in histories]
        if use_collab:
            self._encode_users(plans, indexed)
        answers = self._execute(plans, indexed)
        fused = [self._fuse(plan, hits) for plan, hits in zip(plans, answers)]
        if self.config.mmr_lambda is not None:
            self._diversify(fused)
        return [exploit + explored for exploit, explored, _ in fused]

    # -- planning -------------------------------------------------------------------
    def _check_n(self, n: int | None) -> int:
        n = self.config.n_candidates if n is None else n
        if not 1 <= n <= MAX_RETRIEVED:
            raise ConfigError(f"number of candidates must be within 1..{MAX_RETRIEVED}, got {n}")
        return n

    def _indices(self, history: Sequence[str]) -> np.ndarray:
        """A history's catalog indices (ids outside the catalog are left out)."""
        index = self.dataset.item_index
        return np.array([index[i] for i in seen_ids(history) if i in index], dtype=np.int64)

    def _encode_users(self, plans: list[QueryPlan], indexed: list[np.ndarray]) -> None:
        """Give every plan's collaborative query the sequence model's user state, encoding
        all users in one pass."""
        assert self.collaborative is not None
        asking = [p for p, plan in enumerate(plans)
                  if any(q.label == "collaborative" for q in plan.queries) and len(indexed[p])]
        if not asking:
            return
        states = self.collaborative.user_states([indexed[p] for p in asking])
        for p, state in zip(asking, states):
            plans[p].queries = [replace(q, vector=state) if q.label == "collaborative" else q
                                for q in plans[p].queries]

    # -- asking ---------------------------------------------------------------------
    def _execute(self, plans: list[QueryPlan], indexed: list[np.ndarray],
                 ) -> list[list[list[str]]]:
        """Allowed hit ids per query (plan.queries then plan.explore), per plan."""
        flat = [(p, q) for p, plan in enumerate(plans) for q in [*plan.queries, *plan.explore]]
        text_vec = self._text_vectors(
            list(dict.fromkeys(q.text for _, q in flat if q.text is not None)))
        stored = {
            "item": self._stored(self.item_index, [q for _, q in flat if q.target == "item"]),
            "behaviour": self._stored(self.behaviour_index,
                                      [q for _, q in flat if q.target == "behaviour"]),
        }
        groups: dict[tuple[str, str, int], list[tuple[int, np.ndarray]]] = defaultdict(list)
        raw: dict[int, list[str]] = self._cooccurrence(flat, indexed)
        raw.update(self._prior(flat, plans))
        raw.update(self._described(flat))
        for slot, (p, q) in enumerate(flat):
            if q.target in ("cooccurrence", "prior", "descriptor"):
                continue
            vector = (q.vector if q.vector is not None else text_vec[q.text]
                      if q.text is not None else _mean(q, stored[q.target]))
            if vector is None:
                continue
            fetch = q.fetch or _fetch_size(q.keep or self.config.per_query_k,
                                           len(plans[p].seen), self.config.max_fetch)
            groups[(q.target, json.dumps(q.where, sort_keys=True), fetch)].append((slot, vector))
        for (target, where_json, fetch), members in groups.items():
            index = self.item_index if target == "item" else self.behaviour_index
            assert index is not None
            where = json.loads(where_json) if target == "item" else None
            for lo in range(0, len(members), _QUERY_BATCH):
                part = members[lo:lo + _QUERY_BATCH]
                hits = index.query(np.stack([v for _, v in part]), fetch, where=where)
                raw.update({slot: self._order(flat[slot][1], row,
                                              plans[flat[slot][0]].moment)
                            for (slot, _), row in zip(part, hits)})
        out: list[list[list[str]]] = [[] for _ in plans]
        for slot, (p, q) in enumerate(flat):
            ids = [i for i in raw.get(slot, []) if plans[p].allowed(self.dataset, i)
                   and (q.category is None or q.category in self.dataset.items[i].categories)]
            out[p].append(ids[: q.keep or self.config.per_query_k])
        return out

    def _order(self, query: Query, row: Sequence[tuple[str, float]],
               moment: float | None = None) -> list[str]:
        """Hit ids by similarity, or by similarity + the popularity prior (at the request's
        moment) for a query that asks for it (``Query.prior``)."""
        weight = self.config.popularity_prior
        if not (query.prior and weight > 0):
            return [i for i, _ in row]
        prior, index = self.popularity_prior(moment), self.dataset.item_index
        scored = [(s + weight * (prior[index[i]] if i in index else 0.0), k, i)
                  for k, (i, s) in enumerate(row)]
        return [i for _, _, i in sorted(scored, key=lambda t: (-t[0], t[1]))]

    def popularity_prior(self, moment: float | None = None) -> np.ndarray:
        """log(1 + interactions) / log(1 + the most interactions) per catalog index; with
        ``popularity_half_life_days`` and a moment, of the decayed counts at that moment
        (:class:`~tastelens.vectorstore.popularity.DecayedPopularity`)."""
        half_life = self.config.popularity_half_life_days
        if half_life > 0 and moment is not None and math.isfinite(moment):
            return self._decayed_prior(float(moment), half_life)
        if self._popularity_scores is None:
            fitted = getattr(self.collaborative, "prior", None)
            if fitted is not None:  # the models' own interactions
                counts = fitted.counts
            else:
                counts = item_counts(self._events if self._events is not None
                                     else self.dataset.interactions, self.dataset)
            self._popularity_scores = _log_share(counts)
        return self._popularity_scores

    def _decayed_prior(self, moment: float, half_life: float) -> np.ndarray:
        with self._cache_lock:
            found = self._decayed_at.get(moment)
            if found is not None:
                self._decayed_at.move_to_end(moment)
                return found
            if self._decayed is None:
                events = self._events if self._events is not None \
                    else self.dataset.interactions
                self._decayed = DecayedPopularity.from_events(events, self.dataset, half_life)
            found = self._decayed_at[moment] = _log_share(self._decayed.at(moment))
            if len(self._decayed_at) * found.nbytes > _MOMENT_CACHE_BYTES:
                self._decayed_at.popitem(last=False)
            return found

    def _text_vectors(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Query texts -> vectors: the encoder is asked only for texts not among the last
        ``_TEXT_CACHE`` it encoded (a chat session asks the same profile and category texts
        on every turn; the encoder is the slowest part of a retrieval on a CPU)."""
        with self._cache_lock:
            found = {t: self._text_cache[t] for t in texts if t in self._text_cache}
            for t in found:
                self._text_cache.move_to_end(t)
        missing = [t for t in texts if t not in found]
        if missing:
            encoded = self.item_index.encoder.encode(missing)
            fresh = {t: np.array(encoded[i]) for i, t in enumerate(missing)}
            found.update(fresh)
            with self._cache_lock:
                self._text_cache.update(fresh)
                while len(self._text_cache) > _TEXT_CACHE:
                    self._text_cache.popitem(last=False)
        return found

    def _cooccurrence(self, flat: list[tuple[int, Query]], indexed: list[np.ndarray],
                      ) -> dict[int, list[str]]:
        """The item-item model's ranked ids for every cooccurrence query (by slot), scored
        in one batch; filtering and the cut to ``keep`` happen with every other query's."""
        slots = [(slot, p) for slot, (p, q) in enumerate(flat)
                 if q.target == "cooccurrence" and len(indexed[p])]
        if not slots or self.collaborative is None:
            return {}
        scores = self.collaborative.ease_scores([indexed[p] for _, p in slots])
        if scores is None:
            return {}
        ids = self.dataset.item_ids
        out: dict[int, list[str]] = {}
        for row, (slot, p) in enumerate(slots):
            q = flat[slot][1]
            want = (q.keep or self.config.per_query_k) + len(indexed[p])
            top = np.argpartition(-scores[row], min(want, len(ids) - 1))[:want]
            out[slot] = [ids[i] for i in top[np.argsort(-scores[row][top], kind="stable")]]
        return out

    def _prior(self, flat: list[tuple[int, Query]], plans: list[QueryPlan],
               ) -> dict[int, list[str]]:
        """The popularity prior's top allowed ids for every prior query (by slot)."""
        prior = getattr(self.collaborative, "prior", None)
        if prior is None:
            return {}
        ids, items = self.dataset.item_ids, self.dataset.items
        freshness = self.config.prior.freshness
        out: dict[int, list[str]] = {}
        for slot, (p, q) in enumerate(flat):
            if q.target != "prior":
                continue
            plan = plans[p]

            def allowed(i: int, plan: QueryPlan = plan, q: Query = q) -> bool:
                return plan.allowed(self.dataset, ids[i]) and (
                    q.category is None or q.category in items[ids[i]].categories)

            keep = q.keep or self.config.per_query_k
            out[slot] = [ids[i] for i in prior.top(keep, allowed, freshness)]
        return out

    def _described(self, flat: list[tuple[int, Query]]) -> dict[int, list[str]]:
        """The items carrying each descriptor query's terms (by slot), most popular first
        (the prior without freshness; catalog order without a prior). Allowed-filtering and
        the cut to ``keep`` happen with every other query's."""
        slots = [(slot, q) for slot, (_, q) in enumerate(flat) if q.target == "descriptor"]
        if not slots:
            return {}
        prior = getattr(self.collaborative, "prior", None)
        index, position = self.dataset.descriptor_index, self.dataset.item_index
        out: dict[int, list[str]] = {}
        for slot, q in slots:
            ids = list(dict.fromkeys(i for t in q.terms for i in index.items(t)))
            if prior is not None:
                counts = prior.counts
                ids.sort(key=lambda i: -counts[position[i]])  # stable: ties in catalog order
            out[slot] = ids
        return out

    def _stored(self, index: VectorCollection | None, queries: list[Query],
                ) -> dict[str, np.ndarray]:
        """Stored vectors for every id the queries average over, in one read; ids absent
        from the collection are left out, except ``required`` ones (seed items)."""
        ids = list(dict.fromkeys(i for q in queries for i, _ in q.vector_ids))
        if not ids or index is None:
            return {}
        try:
            return dict(zip(ids, index.embeddings(ids)))
        except UnknownIdError:
            present = [i for i in ids if i in index.get_metadata(ids)]
        required = {i for q in queries if q.required for i, _ in q.vector_ids}
        missing = sorted(required.difference(present))
        if missing:
            raise UnknownIdError(f"seed item {missing[0]!r} is not in the index "
                                 f"{index.name!r}: rebuild it ({index.hint})")
        return dict(zip(present, index.embeddings(present))) if present else {}

    # -- fusing ---------------------------------------------------------------------
    def _fuse(self, plan: QueryPlan, hits: list[list[str]],
              ) -> tuple[list[Candidate], list[Candidate], int]:
        """(exploit candidates, explored candidates, exploit size wanted) for one user; the
        exploit list is the whole fused pool, cut to size by :meth:`_diversify` or here."""
        cfg = self.config
        k = len(plan.queries)
        fused = rrf_fuse([RankedList(q.label, q.weight, ids)
                          for q, ids in zip(plan.queries, hits[:k])], cfg.rrf_k)
        if plan.category_penalty:
            for f in fused:
                for cat in set(self.dataset.items[f.item].categories):
                    f.score *= plan.category_penalty.get(cat, 1.0)
            fused.sort(key=lambda f: -f.score)  # stable: ties keep fusion order
        slots = min(cfg.explore.slots, plan.n - 1) if plan.explore else 0
        # Explored items must be ones the exploit list would not hold anyway.
        reserved = {f.item for f in fused[: plan.n - slots]}
        explored = [f for f in rrf_fuse([RankedList(q.label, q.weight, ids)
                                         for q, ids in zip(plan.explore, hits[k:])], cfg.rrf_k)
                    if f.item not in reserved][:slots]
        picked = {f.item for f in explored}
        size = plan.n - len(explored)
        keep = size * (cfg.mmr_pool if cfg.mmr_lambda is not None else 1)
        exploit = [Candidate(item=f.item, score=f.score, matched=f.matched, ranks=f.ranks)
                   for f in fused if f.item not in picked][:keep]
        return exploit, [Candidate(item=f.item, score=f.score, source="explored",
                                   matched=f.matched, ranks=f.ranks) for f in explored], size

    def _diversify(self, fused: list[tuple[list[Candidate], list[Candidate], int]]) -> None:
        """Re-order every user's exploit pool by MMR, reading all vectors in one call."""
        assert self.config.mmr_lambda is not None
        ids = list(dict.fromkeys(c.item for pool, _, _ in fused for c in pool))
        vectors = dict(zip(ids, self.item_index.embeddings(ids))) if ids else {}
        for pool, _, size in fused:
            if len(pool) > 1:
                order = mmr_order(np.array([c.score for c in pool]),
                                  np.stack([vectors[c.item] for c in pool]),
                                  self.config.mmr_lambda, size)
                pool[:] = [pool[i] for i in order]
            del pool[size:]


def _mean(query: Query, stored: dict[str, np.ndarray]) -> np.ndarray | None:
    """Weighted mean of the query's stored vectors; None when none of them is stored."""
    rows = [(stored[i], w) for i, w in query.vector_ids if i in stored]
    if not rows:
        return None
    total = sum(w for _, w in rows)
    return np.sum([v * (w / total) for v, w in rows], axis=0).astype(np.float32)


def _fetch_size(keep: int, n_seen: int, max_fetch: int) -> int:
    """Results to ask per query: the hits it keeps plus room for seen items, to a power of
    two.

    Only seen items near the query take room, so the margin is capped at another ``keep``
    (fetching |history| more would make heavy users' queries slow); a user who has seen
    most of a query's neighbourhood gets fewer than ``keep`` hits from it.
    """
    want = keep + min(n_seen, keep)
    return min(max_fetch, 1 << max(0, math.ceil(math.log2(want))))


def _log_share(counts: np.ndarray) -> np.ndarray:
    """log(1 + count) / log(1 + the largest count), per catalog index (zeros when empty)."""
    logs = np.log1p(np.asarray(counts, dtype=np.float64))
    top = logs.max() if len(logs) and logs.max() > 0 else 1.0
    return logs / top
