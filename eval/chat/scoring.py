"""Per-case metrics of ``eval chat`` and their bootstrap intervals over conversations.

Per case, with the target's 1-based rank ``r`` in a system's list:

    Recall@K = [r <= K]        MRR@K = 1/r if r <= K else 0

A baseline ranks the whole catalog; ties count as in the harness
(:mod:`tastelens.eval.metrics`: the expected value under a random order of the tied items).
The chat's rank is the target's position in its last list; a target not in it, or a case
without a list, scores 0. ``empty`` is 1 where the case had no list or an empty one;
``named_back`` is 1 where the list holds a film named before the target (by either person:
the seeker's own films recommended back, or the recommender's again).

Every metric is averaged per conversation first, then over conversations (protocol
``first`` has one case per conversation, so this is the plain mean there); the intervals are
percentile bootstrap intervals that resample conversations (:mod:`tastelens.eval.bootstrap`),
and the differences "chat − baseline" are paired: the same resampled conversations for both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from tastelens.eval.bootstrap import mean_ci, paired_difference_ci
from tastelens.eval.metrics import TargetRanks

MRR_K = 10
PAIRED = ("recall@10", "mrr@10")
"""The metrics of the paired "chat − baseline" intervals."""


def _harmonic(k: int) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, k + 1))])


def ranked_metrics(ranks: TargetRanks, ks: Sequence[int], mrr_k: int = MRR_K
                   ) -> dict[str, np.ndarray]:
    """Recall@K for each K and MRR@mrr_k per case, from a full ranking's rank counts."""
    out = {f"recall@{k}": ranks.hit(k).astype(np.float64) for k in ks}
    g = ranks.greater.astype(np.int64)
    t = ranks.ties.astype(np.int64)
    h = _harmonic(mrr_k)
    top = np.minimum(mrr_k, g + t + 1)
    low = np.minimum(mrr_k, g)
    out[f"mrr@{mrr_k}"] = (h[top] - h[low]) / (t + 1)
    return out


def list_rank(items: Sequence[str] | None, target: str) -> float:
    """1-based position of ``target`` in ``items``; inf when absent (or no list)."""
    if not items:
        return float("inf")
    try:
        return float(list(items).index(target) + 1)
    except ValueError:
        return float("inf")


def list_metrics(lists: Sequence[Sequence[str] | None], targets: Sequence[str],
                 ks: Sequence[int], mrr_k: int = MRR_K,
                 named: Sequence[Sequence[str]] | None = None) -> dict[str, np.ndarray]:
    """Recall@K, MRR@mrr_k and ``empty`` per case, from each case's list; ``named_back``
    too when ``named`` gives each case's films named before its target."""
    rank = np.array([list_rank(items, t) for items, t in zip(lists, targets)], np.float64)
    out = {f"recall@{k}": (rank <= k).astype(np.float64) for k in ks}
    out[f"mrr@{mrr_k}"] = np.where(rank <= mrr_k, 1.0 / rank, 0.0)
    out["empty"] = np.array([0.0 if items else 1.0 for items in lists])
    if named is not None:
        out["named_back"] = np.array([1.0 if set(items or ()) & set(before) else 0.0
                                      for items, before in zip(lists, named)])
    return out


def per_conversation(values: np.ndarray, conversations: Sequence[str]) -> np.ndarray:
    """Mean of ``values`` per conversation (in order of first appearance)."""
    codes, first = {}, []
    for c in conversations:
        if c not in codes:
            codes[c] = len(codes)
        first.append(codes[c])
    idx = np.array(first, dtype=np.int64)
    sums = np.bincount(idx, weights=np.asarray(values, np.float64), minlength=len(codes))
    counts = np.bincount(idx, minlength=len(codes))
    return sums / counts


def summarize(metrics: Mapping[str, np.ndarray], conversations: Sequence[str], *,
              n_resamples: int, confidence: float, seed: int) -> dict[str, dict[str, float]]:
    """{metric: {mean, low, high}} over conversations (see the module docstring)."""
    out = {}
    for name, values in metrics.items():
        ci = mean_ci(per_conversation(values, conversations), n_resamples=n_resamples,
                     confidence=confidence, seed=seed)
        out[name] = {"mean": round(ci.delta, 4), "low": round(ci.low, 4),
                     "high": round(ci.high, 4)}
    return out


def paired(system: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray],
           conversations: Sequence[str], *, n_resamples: int, confidence: float, seed: int,
           names: Sequence[str] = PAIRED) -> dict[str, dict[str, float | bool]]:
    """{metric: {delta, low, high, excludes_zero}} of system − reference, paired."""
    out: dict[str, dict[str, float | bool]] = {}
    for name in names:
        ci = paired_difference_ci(per_conversation(system[name], conversations),
                                  per_conversation(reference[name], conversations),
                                  n_resamples=n_resamples, confidence=confidence, seed=seed)
        out[name] = {"delta": round(ci.delta, 4), "low": round(ci.low, 4),
                     "high": round(ci.high, 4), "excludes_zero": not ci.contains(0.0)}
    return out


def percentiles(seconds: Sequence[float]) -> dict[str, float | int]:
    """n, p50, p95, mean and max of turn times (seconds)."""
    values = np.asarray(seconds, dtype=np.float64)
    if values.size == 0:
        return {"n": 0}
    return {"n": int(values.size), "p50_s": round(float(np.percentile(values, 50)), 4),
            "p95_s": round(float(np.percentile(values, 95)), 4),
            "mean_s": round(float(values.mean()), 4), "max_s": round(float(values.max()), 4)}
