"""Metrics of known ranks, the per-conversation averaging and the bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.eval.chat import scoring
from tastelens.eval.metrics import TargetRanks


def test_list_metrics_from_positions() -> None:
    lists = [["a", "t"], ["t"], ["x"] * 3, None, [], [f"i{j}" for j in range(11)] + ["t"]]
    out = scoring.list_metrics(lists, ["t"] * 6, [1, 10, 50])
    assert out["recall@1"].tolist() == [0, 1, 0, 0, 0, 0]
    assert out["recall@10"].tolist() == [1, 1, 0, 0, 0, 0]
    assert out["recall@50"].tolist() == [1, 1, 0, 0, 0, 1]     # rank 12
    assert out["mrr@10"].tolist() == [0.5, 1.0, 0, 0, 0, 0]
    assert out["empty"].tolist() == [0, 0, 0, 1, 1, 0]
    assert "named_back" not in out
    assert scoring.list_rank(None, "t") == float("inf")
    named = scoring.list_metrics(lists, ["t"] * 6, [10], named=[["a"], [], ["x"], ["a"], ["a"],
                                                                 ["z"]])
    assert named["named_back"].tolist() == [1, 0, 1, 0, 0, 0]


def test_ranked_metrics_follow_the_tie_convention() -> None:
    # target ranks 1 (no ties), 3 (no ties), 12, and 9 tied with 3 others (ranks 9..12)
    ranks = TargetRanks(np.array([0, 2, 11, 8]), np.array([0, 0, 0, 3]),
                        np.array([100, 100, 100, 100]))
    out = scoring.ranked_metrics(ranks, [1, 10], 10)
    assert out["recall@1"].tolist() == [1, 0, 0, 0]
    assert out["recall@10"].tolist() == [1, 1, 0, 0.5]          # 2 of 4 tied spots within 10
    assert out["mrr@10"].tolist() == pytest.approx([1, 1 / 3, 0, (1 / 9 + 1 / 10) / 4])


def test_per_conversation_means_then_over_conversations() -> None:
    values = np.array([1.0, 0.0, 0.0, 1.0])
    conv = ["a", "a", "b", "c"]
    assert scoring.per_conversation(values, conv).tolist() == [0.5, 0.0, 1.0]
    summary = scoring.summarize({"recall@10": values}, conv, n_resamples=200, confidence=0.9,
                                seed=1)
    cell = summary["recall@10"]
    assert cell["mean"] == 0.5                      # (0.5 + 0 + 1) / 3, not 2 / 4 of cases
    assert cell["low"] <= 0.5 <= cell["high"] and cell["low"] < cell["high"]


def test_paired_differences() -> None:
    conv = [str(i) for i in range(200)]
    rng = np.random.default_rng(0)
    base = {"recall@10": rng.random(200).round(), "mrr@10": rng.random(200)}
    same = scoring.paired(base, base, conv, n_resamples=100, confidence=0.95, seed=0)
    assert same["recall@10"] == {"delta": 0.0, "low": 0.0, "high": 0.0, "excludes_zero": False}
    better = {"recall@10": np.ones(200), "mrr@10": base["mrr@10"] + 0.1}
    diff = scoring.paired(better, base, conv, n_resamples=100, confidence=0.95, seed=0)
    assert diff["mrr@10"]["delta"] == pytest.approx(0.1) and diff["mrr@10"]["excludes_zero"]
    assert diff["recall@10"]["low"] > 0


def test_percentiles() -> None:
    out = scoring.percentiles([0.1] * 19 + [2.0])
    assert out["n"] == 20 and out["p50_s"] == 0.1 and out["max_s"] == 2.0
    assert out["p95_s"] == pytest.approx(0.195)
    assert scoring.percentiles([]) == {"n": 0}
