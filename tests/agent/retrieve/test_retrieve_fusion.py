"""Reciprocal-rank fusion and MMR arithmetic (no index involved)."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.agent.retrieve.fusion import RankedList, mmr_order, rrf_fuse


def test_rrf_scores_are_weighted_reciprocal_ranks() -> None:
    fused = rrf_fuse([RankedList("a", 1.0, ["x", "y", "z"]),
                      RankedList("b", 2.0, ["y", "w"])], rrf_k=10)
    scores = {f.item: f.score for f in fused}
    assert scores["x"] == pytest.approx(1 / 11)
    assert scores["y"] == pytest.approx(1 / 12 + 2 / 11)
    assert scores["z"] == pytest.approx(1 / 13)
    assert scores["w"] == pytest.approx(2 / 12)
    assert [f.item for f in fused] == ["y", "w", "x", "z"]
    y = fused[0]
    assert y.matched == ["b", "a"]  # the larger contribution first
    assert fused[2].matched == ["a"]


def test_rrf_counts_a_repeated_id_once_at_its_best_rank() -> None:
    fused = rrf_fuse([RankedList("a", 1.0, ["x", "y", "x"])], rrf_k=0)
    assert {f.item: f.score for f in fused} == {"x": pytest.approx(1.0),
                                                "y": pytest.approx(0.5)}


def test_negative_lists_only_demote() -> None:
    fused = rrf_fuse([RankedList("like", 1.0, ["x", "y"]),
                      RankedList("dislike:x", -1.5, ["x", "q"])], rrf_k=1)
    assert [f.item for f in fused] == ["y", "x"]  # q came only from the dislike: not added
    assert fused[1].score == pytest.approx(1 / 2 - 1.5 / 2)
    assert fused[1].matched == ["like"]


def test_rrf_ties_keep_first_appearance() -> None:
    fused = rrf_fuse([RankedList("a", 1.0, ["p"]), RankedList("b", 1.0, ["q"])])
    assert [f.item for f in fused] == ["p", "q"]


def test_mmr_trades_relevance_for_diversity() -> None:
    # Items 0 and 1 are near-duplicates; 2 is different and a little less relevant.
    vectors = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    relevance = np.array([1.0, 0.95, 0.8])
    assert mmr_order(relevance, vectors, lam=1.0, n=3) == [0, 1, 2]
    assert mmr_order(relevance, vectors, lam=0.5, n=3) == [0, 2, 1]
    assert mmr_order(relevance, vectors, lam=0.5, n=2) == [0, 2]
    assert mmr_order(relevance, vectors, lam=0.5, n=0) == []
    assert mmr_order(relevance, vectors, lam=0.5, n=10) == [0, 2, 1]
