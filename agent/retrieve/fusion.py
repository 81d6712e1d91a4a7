"""Combining ranked lists: reciprocal-rank fusion and maximal marginal relevance.

Pure functions over ids and numpy arrays (no Chroma, no dataset), so the arithmetic is
tested on its own. :mod:`tastelens.agent.retrieve.retriever` plans the queries and calls these.

Reciprocal-rank fusion (Cormack et al., 2009) with per-list weights::

    score(item) = Σ_q  w_q / (rrf_k + rank_q(item))        rank 1 = best

A list with a negative weight (a "dislike" query) only demotes: it lowers the score of items
that positive lists found, and never adds an item of its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class RankedList:
    """One query's answer: item ids best first, the query's label and its fusion weight."""

    label: str
    weight: float
    ids: Sequence[str]


@dataclass
class Fused:
    """One fused item: its score and the labels of the positive lists that found it, with
    their contributions (for ordering ``matched`` by how much each query mattered)."""

    item: str
    score: float = 0.0
    contributions: dict[str, float] = field(default_factory=dict)
    ranks: dict[str, int] = field(default_factory=dict)
    """1-based rank in each positive list that holds the item, by label."""

    @property
    def matched(self) -> list[str]:
        """Labels, largest contribution first (ties: the order the lists were given)."""
        order = {label: i for i, label in enumerate(self.contributions)}
        return sorted(self.contributions, key=lambda lab: (-self.contributions[lab], order[lab]))


def rrf_fuse(lists: Sequence[RankedList], rrf_k: float = 60.0) -> list[Fused]:
    """Fuse ranked lists; best first, ties broken by first appearance (deterministic).

    An id repeated within one list counts once, at its best rank.
    """
    fused: dict[str, Fused] = {}
    for ranked in lists:
        if ranked.weight <= 0:
            continue
        for rank, item in enumerate(dict.fromkeys(ranked.ids), start=1):
            entry = fused.setdefault(item, Fused(item))
            gain = ranked.weight / (rrf_k + rank)
            entry.score += gain
            entry.contributions[ranked.label] = entry.contributions.get(ranked.label, 0.0) + gain
            entry.ranks.setdefault(ranked.label, rank)
    for ranked in lists:
        if ranked.weight >= 0:
            continue
        for rank, item in enumerate(dict.fromkeys(ranked.ids), start=1):
            if item in fused:
                fused[item].score += ranked.weight / (rrf_k + rank)
    first_seen = {item: i for i, item in enumerate(fused)}
    return sorted(fused.values(), key=lambda f: (-f.score, first_seen[f.item]))


def mmr_order(relevance: np.ndarray, vectors: np.ndarray, lam: float, n: int) -> list[int]:
    """Greedy maximal marginal relevance: indices of ``n`` picks, in pick order.

    ``pick = argmax  lam · rel_i − (1 − lam) · max_{j picked} cos(v_i, v_j)``, with
    relevance rescaled to [0, 1] so ``lam`` means the same whatever the score scale.
    ``lam = 1`` is the relevance order; lower values trade relevance for diversity.
    """
    count = len(relevance)
    n = min(n, count)
    if n <= 0:
        return []
    rel = np.asarray(relevance, dtype=np.float64)
    span = rel.max() - rel.min()
    rel = (rel - rel.min()) / span if span > 0 else np.ones_like(rel)
    vec = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vec, axis=1, keepdims=True)
    vec = vec / np.where(norms > 0, norms, 1.0)
    sims = vec @ vec.T
    picked: list[int] = []
    max_sim = np.full(count, -np.inf)
    free = np.ones(count, dtype=bool)
    for _ in range(n):
        # Before anything is picked the redundancy term is 0, so the first pick is the
        # most relevant item.
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        gain = lam * rel - (1.0 - lam) * redundancy
        gain[~free] = -np.inf
        best = int(np.argmax(gain))  # argmax takes the first of equals: relevance order
        picked.append(best)
        free[best] = False
        max_sim = np.maximum(max_sim, sims[best])
    return picked
