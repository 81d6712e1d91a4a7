"""The retriever's fused score of *given* candidates (the candidate protocol).

:meth:`Retriever.retrieve_many` searches the catalog and keeps each query's top hits. Under
the candidate protocol the items to rank are fixed (the target plus sampled negatives), most
of them outside any query's top hits, so here every query of the user's retrieval plan —
the plan the retriever itself makes: the collaborative models' scores, interests,
categories, dislikes — ranks the whole unseen catalog (text queries by cosine similarity,
the sequence and item-item models by their own scores), and each candidate gets the
retriever's
weighted reciprocal-rank fusion of its ranks::

    score(c) = Σ_q  w_q / (rrf_k + rank_q(c))

with the retriever's rules otherwise: a dislike query (negative weight) demotes only the
items within its ``per_query_k`` best, as in retrieval, and disliked categories multiply the
score by their penalty. Exploration queries are left out (they add items, they do not order
given ones). For the retriever's own top hits this is the score retrieval gives them; below
them it extends it smoothly instead of tying everything at zero.

The plan comes from the retriever's own :class:`~tastelens.agent.retrieve.plan.QueryPlanner`
(``retriever.planner``), so retrieval and this scoring always ask the same queries.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tastelens.agent.recommendation import Constraints
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.agent.retrieve.plan import Query
from tastelens.schemas import InterestProfile


class CandidateScorer:
    """Fused retrieval scores of given candidates; catalog vectors are read once."""

    def __init__(self, retriever: Retriever) -> None:
        self.retriever = retriever
        self.dataset = retriever.dataset
        self._vectors: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _catalog(self, target: str) -> tuple[np.ndarray, np.ndarray]:
        """(vectors of the items the collection holds, their catalog indices)."""
        if target not in self._vectors:
            index = (self.retriever.item_index if target == "item"
                     else self.retriever.behaviour_index)
            ids = list(self.dataset.item_ids)
            if target == "behaviour":
                ids = [i for i in ids if i in index.get_metadata(ids)]
            vectors = np.asarray(index.embeddings(ids), dtype=np.float32) if ids else \
                np.zeros((0, 1), np.float32)
            rows = np.array([self.dataset.item_index[i] for i in ids], dtype=np.int64)
            self._vectors[target] = (vectors, rows)
        return self._vectors[target]

    def _model_scores(self, histories: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """The collaborative models' catalog scores per history, by query target."""
        collab = self.retriever.collaborative
        if collab is None:
            return {}
        indexed = [self.retriever._indices(h) for h in histories]
        out = {"behaviour": collab.sasrec.scores(indexed)}
        ease = collab.ease_scores(indexed)
        if ease is not None:
            out["cooccurrence"] = ease
        return out

    def scores(self, profiles: Sequence[InterestProfile | None],
               histories: Sequence[Sequence[str]],
               candidates: Sequence[Sequence[str]]) -> np.ndarray:
        """Shape (users, candidates), higher is better; 0 where no query ranks anything
        (no profile, e.g. an empty history)."""
        width = max((len(c) for c in candidates), default=0)
        out = np.zeros((len(candidates), width), dtype=np.float32)
        models = self._model_scores(histories)
        plans = [None if p is None else
                 self.retriever.planner.plan(p, h, Constraints(), max(1, len(c)),
                                             "behaviour" in models, "cooccurrence" in models)
                 for p, h, c in zip(profiles, histories, candidates)]
        texts = list(dict.fromkeys(q.text for plan in plans if plan is not None
                                   for q in plan.queries if q.text is not None))
        encoded = self.retriever.item_index.encoder.encode(texts) if texts else []
        text_vectors = dict(zip(texts, encoded))
        for row, (plan, items) in enumerate(zip(plans, candidates)):
            if plan is None or not items:
                continue
            seen = np.array([self.dataset.item_index[i] for i in plan.seen
                             if i in self.dataset.item_index], dtype=np.int64)
            cols = np.array([self.dataset.item_index[i] for i in items], dtype=np.int64)
            total = np.zeros(len(items), dtype=np.float64)
            for query in plan.queries:
                if query.target in models:
                    ranks = _ranks_of(models[query.target][row].copy(), seen, cols)
                else:
                    ranks = self._ranks(query, text_vectors, seen, cols)
                if ranks is None:
                    continue
                gain = query.weight / (self.retriever.config.rrf_k + ranks)
                if query.weight < 0:  # a dislike demotes only what it would have found
                    gain = np.where(ranks <= self.retriever.config.per_query_k, gain, 0.0)
                total += np.where(np.isfinite(ranks), gain, 0.0)
            for col, item in enumerate(items):
                for cat in set(self.dataset.items[item].categories):
                    total[col] *= plan.category_penalty.get(cat, 1.0)
            out[row, : len(items)] = total
        return out

    def _ranks(self, query: Query, text_vectors: dict[str, np.ndarray], seen: np.ndarray,
               cols: np.ndarray) -> np.ndarray | None:
        """Rank (1 = best) of each candidate among the unseen items the query's collection
        holds; inf for a candidate the collection lacks; None when the query has no vector."""
        vectors, rows = self._catalog(query.target)
        if not len(rows):
            return None
        if query.text is not None:
            qvec = np.asarray(text_vectors[query.text], dtype=np.float32)
        else:
            where = {int(r): i for i, r in enumerate(rows)}
            picked = [(where[self.dataset.item_index[i]], w) for i, w in query.vector_ids
                      if self.dataset.item_index.get(i) in where]
            if not picked:
                return None
            weights = np.array([w for _, w in picked], dtype=np.float32)
            qvec = weights @ vectors[[p for p, _ in picked]] / weights.sum()
        sims = np.full(self.dataset.n_items, -np.inf, dtype=np.float32)
        sims[rows] = vectors @ qvec
        return _ranks_of(sims, seen, cols)


def _ranks_of(sims: np.ndarray, seen: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Rank (1 = best) of each of ``cols`` among the unseen items with a finite score; inf
    for a column without one. ``sims`` is modified."""
    held = np.isfinite(sims)
    sims[seen] = -np.inf  # the retriever never returns seen items
    ranked = np.sort(sims[np.isfinite(sims)])[::-1]
    target = sims[cols]
    # Rank = 1 + unseen items strictly more similar (ties share the better rank).
    ranks = 1.0 + np.searchsorted(-ranked, -target, side="left").astype(np.float64)
    return np.where(held[cols], ranks, np.inf)
