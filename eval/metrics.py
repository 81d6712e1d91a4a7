"""Ranking and beyond-accuracy metrics.

Tie convention (neutral, never optimistic): when the target shares its score with other
items, every metric is its *expected value under a uniformly random order of the tied
items*. With ``g`` items scored strictly higher and ``t`` other items tied, the target's
rank is uniform on ``g+1 .. g+t+1``, so e.g. HR@K = |{r <= K}| / (t+1) and the reported
rank is the mid-rank ``g + 1 + t/2``. A constant scorer therefore gets exactly what a
random ranking gets on average (HR@K = K / n) and no credit for ties; without ties every
metric is the textbook one (checked against ranx in the tests).

The batched fast path (:func:`target_ranks` -> :class:`TargetRanks`) serves the harness's
one-target-per-case protocols; :func:`hit_rate_at_k`, :func:`recall_at_k`,
:func:`ndcg_at_k` and :func:`reciprocal_rank` take a *set* of relevant items for one user
under the same convention (binary relevance).

Beyond accuracy, from each case's top-K list:
- catalog coverage@K: share of the catalog that appears in at least one top-K list;
- intra-list diversity@K: 1 - mean pairwise cosine similarity of the items' category
  (genre) multi-hot vectors — no embedding model needed; pairs involving an item without
  categories are left out (their similarity is unknown);
- novelty@K: mean ``-log2 p(i)`` over the list, ``p(i)`` = share of training users who
  interacted with ``i``, add-one smoothed so items unseen in training stay finite.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd
from scipy.special import gammaln

from tastelens.data.dataset import Dataset


@lru_cache(maxsize=8)
def _prefix_sums(n: int) -> tuple[np.ndarray, np.ndarray]:
    """D[r] = sum_{i<=r} 1/log2(i+1) and H[r] = sum_{i<=r} 1/i, for r = 0..n."""
    r = np.arange(1, n + 1, dtype=np.float64)
    dcg = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(r + 1))])
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / r)])
    return dcg, harmonic


@dataclass(frozen=True)
class TargetRanks:
    """Where each case's single target landed: ``greater`` items scored strictly higher and
    ``ties`` other (unmasked) items scored the same. Metrics are per case (float64)."""

    greater: np.ndarray
    ties: np.ndarray
    n_ranked: np.ndarray
    """How many items each case ranked (catalog minus masked, or the candidates)."""

    def rank(self) -> np.ndarray:
        """Expected (mid-)rank, 1-based."""
        return self.greater + 1 + self.ties / 2

    def hit(self, k: int) -> np.ndarray:
        """HR@K = Recall@K for one relevant item."""
        last = self.greater + self.ties + 1
        return np.clip(np.minimum(k, last) - self.greater, 0, None) / (self.ties + 1)

    def ndcg(self, k: int) -> np.ndarray:
        dcg, _ = _prefix_sums(int(self.n_ranked.max(initial=0)) + 1)
        top = np.minimum(k, self.greater + self.ties + 1)
        low = np.minimum(k, self.greater)
        return (dcg[top] - dcg[low]) / (self.ties + 1)

    def rr(self) -> np.ndarray:
        """Reciprocal rank over the full ranking (no cut-off)."""
        _, harmonic = _prefix_sums(int(self.n_ranked.max(initial=0)) + 1)
        return (harmonic[self.greater + self.ties + 1] - harmonic[self.greater]) / (self.ties + 1)

    def informative(self) -> np.ndarray:
        """False where the system gave every ranked item the same score (no ranking at all)."""
        return self.ties + 1 < self.n_ranked


def target_ranks(scores: np.ndarray, targets: np.ndarray,
                 n_masked: np.ndarray | None = None) -> TargetRanks:
    """Rank counts of ``targets[i]`` (column index) in row ``i`` of ``scores``.

    Masked items must hold ``-inf``; ``n_masked`` (per row, the target never counted) keeps
    them out of the ties of a target that is itself scored ``-inf``.
    """
    rows = np.arange(scores.shape[0])
    t = scores[rows, targets][:, None]
    if np.isnan(t).any() or np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    greater = (scores > t).sum(axis=1).astype(np.int64)
    ties = (scores == t).sum(axis=1).astype(np.int64) - 1
    n_masked = np.zeros(len(rows), np.int64) if n_masked is None else np.asarray(n_masked, np.int64)
    ties = np.where(np.isneginf(t[:, 0]), ties - n_masked, ties)
    return TargetRanks(greater=greater, ties=ties, n_ranked=scores.shape[1] - n_masked)


# --- one user, a set of relevant items (same tie convention) -----------------------------

def _counts(scores: np.ndarray, relevant: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    rel = np.unique(np.asarray(relevant, dtype=np.int64))
    if rel.size == 0:
        raise ValueError("no relevant items")
    s = scores[rel][:, None]
    return (scores > s).sum(axis=1), (scores == s).sum(axis=1) - 1


def recall_at_k(scores: np.ndarray, relevant: Sequence[int], k: int) -> float:
    """Expected share of the relevant items in the top K."""
    g, t = _counts(scores, relevant)
    return float(TargetRanks(g, t, np.full(g.shape, len(scores))).hit(k).mean())


def ndcg_at_k(scores: np.ndarray, relevant: Sequence[int], k: int) -> float:
    """Expected DCG@K / ideal DCG@K (binary gains; linearity makes the expectation exact)."""
    g, t = _counts(scores, relevant)
    dcg, _ = _prefix_sums(len(scores) + 1)
    expected = TargetRanks(g, t, np.full(g.shape, len(scores))).ndcg(k).sum()
    return float(expected / dcg[min(len(g), k)])


def _first_relevant_position(scores: np.ndarray, relevant: Sequence[int]
                             ) -> tuple[int, int, int]:
    """(items strictly above the best relevant score, size of its tie group, relevant in it)."""
    scores = np.asarray(scores, dtype=np.float64)
    rel = np.unique(np.asarray(relevant, dtype=np.int64))
    best = scores[rel].max()
    return int((scores > best).sum()), int((scores == best).sum()), int((scores[rel] == best).sum())


def hit_rate_at_k(scores: np.ndarray, relevant: Sequence[int], k: int) -> float:
    """Probability that at least one relevant item is in the top K."""
    g, size, r = _first_relevant_position(scores, relevant)
    slots = k - g
    if slots <= 0:
        return 0.0
    if slots >= size:
        return 1.0
    # P(none of the r relevant among the `slots` drawn from the tie group of `size`).
    none = np.exp(gammaln(size - r + 1) - gammaln(size - r - slots + 1)
                  + gammaln(size - slots + 1) - gammaln(size + 1)) if size - r >= slots else 0.0
    return float(1.0 - none)


def reciprocal_rank(scores: np.ndarray, relevant: Sequence[int]) -> float:
    """Expected 1 / rank of the first relevant item (no cut-off)."""
    g, size, r = _first_relevant_position(scores, relevant)
    i = np.arange(1, size - r + 2)
    # P(first relevant at position i of the group) = C(size-i, r-1) / C(size, r).
    logp = (gammaln(size - i + 1) - gammaln(r) - gammaln(size - i - r + 2)
            - (gammaln(size + 1) - gammaln(r + 1) - gammaln(size - r + 1)))
    return float(np.sum(np.exp(logp) / (g + i)))


# --- top-K lists and beyond-accuracy metrics ---------------------------------------------

def top_k(scores: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Column indices of each row's K best scores (best first), ties at the cut broken at
    random; ``-1`` pads rows with fewer than K finite scores. Uses argpartition: O(n) a row."""
    n_rows, n_cols = scores.shape
    k_eff = min(k, n_cols)
    part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
    vals = np.take_along_axis(scores, part, axis=1)
    kth = vals.min(axis=1)
    above = (scores > kth[:, None]).sum(axis=1)
    tied = (scores == kth[:, None]).sum(axis=1)
    # Only rows whose K-th score is shared by items on both sides of the cut are ambiguous.
    for row in np.flatnonzero(above + tied > k_eff):
        best = np.flatnonzero(scores[row] > kth[row])
        pool = np.flatnonzero(scores[row] == kth[row])
        part[row] = np.concatenate([best, rng.choice(pool, k_eff - best.size, replace=False)])
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    part = np.take_along_axis(part, order, axis=1)
    vals = np.take_along_axis(vals, order, axis=1)
    part[np.isneginf(vals)] = -1
    if k_eff < k:
        part = np.pad(part, ((0, 0), (0, k - k_eff)), constant_values=-1)
    return part


def catalog_coverage(lists: np.ndarray, n_items: int) -> float:
    """Share of the catalog appearing in at least one list (``-1`` entries ignored)."""
    seen = np.unique(lists[lists >= 0])
    return float(seen.size / n_items) if n_items else 0.0


def category_vectors(dataset: Dataset) -> np.ndarray:
    """L2-normalised multi-hot category vectors in catalog order (zero rows: no category)."""
    names = sorted({c for item in dataset.items.values() for c in item.categories})
    col = {c: j for j, c in enumerate(names)}
    vectors = np.zeros((dataset.n_items, max(len(names), 1)), dtype=np.float32)
    for i, item in enumerate(dataset.items.values()):
        for c in item.categories:
            vectors[i, col[c]] = 1.0
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def intra_list_diversity(lists: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """Per list: 1 - mean pairwise cosine; NaN where fewer than two items have vectors."""
    valid = lists >= 0
    v = vectors[np.where(valid, lists, 0)] * valid[..., None]
    has = valid & (np.abs(v).sum(axis=2) > 0)
    sims = np.einsum("bkd,bjd->bkj", v, v)
    pair = has[:, :, None] & has[:, None, :]
    pair &= ~np.eye(lists.shape[1], dtype=bool)[None]
    n_pairs = pair.sum(axis=(1, 2))
    total = np.where(pair, sims, 0.0).sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, 1.0 - total / np.maximum(n_pairs, 1), np.nan)


def item_popularity(train: pd.DataFrame, dataset: Dataset) -> np.ndarray:
    """p(i) = (training users who interacted with i + 1) / (training users + 1)."""
    counts = np.zeros(dataset.n_items, dtype=np.float64)
    pairs = train[["user", "item"]].drop_duplicates()
    idx = pd.Index(dataset.item_ids).get_indexer(pairs["item"])
    np.add.at(counts, idx[idx >= 0], 1.0)
    n_users = train["user"].nunique()
    return (counts + 1.0) / (n_users + 1.0)


def novelty(lists: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Per list: mean -log2 p(i) of its items; NaN for an empty list."""
    valid = lists >= 0
    info = -np.log2(popularity[np.where(valid, lists, 0)])
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, np.where(valid, info, 0.0).sum(axis=1) / np.maximum(n, 1), np.nan)
