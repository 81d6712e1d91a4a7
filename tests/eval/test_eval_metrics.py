"""Ranking metrics: hand-computed cases, the tie convention (checked by brute force over
every tie-breaking order), and a cross-check against ranx on tie-free random runs."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest

from tastelens.eval import metrics as M


def _one(scores, target, k):
    r = M.target_ranks(np.asarray([scores], dtype=np.float64), np.array([target]))
    return r.hit(k)[0], r.ndcg(k)[0], r.rr()[0], r.rank()[0]


def test_single_target_hand_computed():
    hit, ndcg, rr, rank = _one([0.9, 0.1, 0.5, 0.3], target=2, k=5)
    assert (hit, rank, rr) == (1.0, 2.0, 0.5)
    assert ndcg == pytest.approx(1 / math.log2(3))
    assert _one([0.9, 0.1, 0.5, 0.3], target=1, k=3)[:2] == (0.0, 0.0)
    assert _one([0.9, 0.1, 0.5, 0.3], target=0, k=1)[:3] == (1.0, 1.0, 1.0)


def test_constant_scores_get_exactly_what_random_gets():
    n, k = 10, 3
    hit, ndcg, rr, rank = _one(np.zeros(n), target=4, k=k)
    assert rank == pytest.approx(5.5)
    assert hit == pytest.approx(k / n)
    assert ndcg == pytest.approx(sum(1 / math.log2(r + 1) for r in range(1, k + 1)) / n)
    assert rr == pytest.approx(sum(1 / r for r in range(1, n + 1)) / n)
    informative = M.target_ranks(np.zeros((1, n)), np.array([0])).informative()
    assert not informative[0]


def test_partial_ties_straddling_the_cut():
    # target tied with two others at ranks 2..4; K=3 -> the target is in with prob 2/3.
    hit, ndcg, _, rank = _one([5, 3, 3, 3, 1], target=2, k=3)
    assert rank == 3.0
    assert hit == pytest.approx(2 / 3)
    assert ndcg == pytest.approx((1 / math.log2(3) + 1 / math.log2(4)) / 3)


def test_masked_items_do_not_count_as_ties_of_a_minus_inf_target():
    scores = np.array([[1.0, -np.inf, -np.inf, -np.inf, 0.5]])
    # items 1 and 2 are masked; the target (3) was scored -inf by the system itself.
    r = M.target_ranks(scores, np.array([3]), n_masked=np.array([2]))
    assert (r.greater[0], r.ties[0], r.n_ranked[0]) == (2, 0, 3)
    assert r.rank()[0] == 3.0


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        M.target_ranks(np.array([[0.1, np.nan]]), np.array([0]))


def _brute_force(scores, relevant, k):
    """Average textbook metrics over every ordering consistent with the scores."""
    n = len(scores)
    totals = np.zeros(4)
    count = 0
    for perm in itertools.permutations(range(n)):
        if any(scores[perm[i]] < scores[perm[i + 1]] for i in range(n - 1)):
            continue
        ranks = sorted(perm.index(j) + 1 for j in relevant)
        dcg = sum(1 / math.log2(r + 1) for r in ranks if r <= k)
        idcg = sum(1 / math.log2(r + 1) for r in range(1, min(len(relevant), k) + 1))
        totals += [sum(r <= k for r in ranks) / len(relevant), dcg / idcg,
                   float(ranks[0] <= k), 1 / ranks[0]]
        count += 1
    return totals / count


@pytest.mark.parametrize("seed", range(12))
def test_set_metrics_equal_the_expectation_over_tie_orders(seed):
    rng = np.random.default_rng(seed)
    n = 7
    scores = rng.integers(0, 3, size=n).astype(float)  # many ties
    relevant = sorted(rng.choice(n, size=int(rng.integers(1, 4)), replace=False).tolist())
    k = int(rng.integers(1, n + 1))
    recall, ndcg, hit, rr = _brute_force(scores, relevant, k)
    assert M.recall_at_k(scores, relevant, k) == pytest.approx(recall)
    assert M.ndcg_at_k(scores, relevant, k) == pytest.approx(ndcg)
    assert M.hit_rate_at_k(scores, relevant, k) == pytest.approx(hit)
    assert M.reciprocal_rank(scores, relevant) == pytest.approx(rr)


def test_batched_path_matches_set_functions_for_one_target():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(20, 15)).astype(np.float64)
    targets = rng.integers(0, 15, size=20)
    r = M.target_ranks(scores, targets)
    for i in range(20):
        assert r.hit(5)[i] == pytest.approx(M.recall_at_k(scores[i], [targets[i]], 5))
        assert r.hit(5)[i] == pytest.approx(M.hit_rate_at_k(scores[i], [targets[i]], 5))
        assert r.ndcg(5)[i] == pytest.approx(M.ndcg_at_k(scores[i], [targets[i]], 5))
        assert r.rr()[i] == pytest.approx(M.reciprocal_rank(scores[i], [targets[i]]))


def test_against_ranx_on_tie_free_random_runs():
    ranx = pytest.importorskip("ranx")
    rng = np.random.default_rng(7)
    n_users, n_items = 25, 60
    scores = rng.random((n_users, n_items))  # continuous: no ties
    relevant = [rng.choice(n_items, size=int(rng.integers(1, 4)), replace=False)
                for _ in range(n_users)]
    qrels = ranx.Qrels({f"u{u:03d}": {f"i{j}": 1 for j in rel} for u, rel in enumerate(relevant)})
    run = ranx.Run({f"u{u:03d}": {f"i{j}": float(scores[u, j]) for j in range(n_items)}
                    for u in range(n_users)})
    names = ["ndcg@10", "recall@10", "hit_rate@10", "mrr", "ndcg@20", "recall@20"]
    theirs = ranx.evaluate(qrels, run, names, return_mean=False)
    for u, rel in enumerate(relevant):
        ours = {"ndcg@10": M.ndcg_at_k(scores[u], rel, 10),
                "recall@10": M.recall_at_k(scores[u], rel, 10),
                "hit_rate@10": M.hit_rate_at_k(scores[u], rel, 10),
                "mrr": M.reciprocal_rank(scores[u], rel),
                "ndcg@20": M.ndcg_at_k(scores[u], rel, 20),
                "recall@20": M.recall_at_k(scores[u], rel, 20)}
        for name in names:
            assert ours[name] == pytest.approx(theirs[name][u], abs=1e-9), (name, u)
    # The harness's batched single-target path against ranx, too.
    targets = np.array([rel[0] for rel in relevant])
    qrels1 = ranx.Qrels({f"u{u:03d}": {f"i{t}": 1} for u, t in enumerate(targets)})
    single = ranx.evaluate(qrels1, run, ["ndcg@10", "recall@10", "mrr"], return_mean=False)
    r = M.target_ranks(scores, targets)
    np.testing.assert_allclose(r.ndcg(10), single["ndcg@10"], atol=1e-9)
    np.testing.assert_allclose(r.hit(10), single["recall@10"], atol=1e-9)
    np.testing.assert_allclose(r.rr(), single["mrr"], atol=1e-9)


def test_top_k_orders_best_first_and_breaks_ties_at_the_cut_at_random():
    scores = np.array([[0.1, 0.9, 0.5, 0.5, 0.5, -np.inf, 0.7]])
    seen = set()
    for seed in range(30):
        top = M.top_k(scores, 3, np.random.default_rng(seed))[0]
        assert list(top[:2]) == [1, 6]
        assert top[2] in (2, 3, 4)
        seen.add(int(top[2]))
    assert seen == {2, 3, 4}  # every tied item gets its turn
    padded = M.top_k(np.array([[1.0, -np.inf, 0.5]]), 4, np.random.default_rng(0))[0]
    assert list(padded) == [0, 2, -1, -1]  # masked and missing slots are -1


def test_top_k_without_ties_matches_a_full_sort():
    rng = np.random.default_rng(1)
    scores = rng.random((50, 300))
    top = M.top_k(scores, 20, rng)
    np.testing.assert_array_equal(top, np.argsort(-scores, axis=1)[:, :20])


def test_coverage_diversity_and_novelty_by_hand(tiny_dataset):
    lists = np.array([[0, 6, -1], [1, 0, 6]])  # tiny catalog: item i has genre i % 6
    assert M.catalog_coverage(lists, 40) == pytest.approx(3 / 40)
    vectors = M.category_vectors(tiny_dataset)
    ild = M.intra_list_diversity(lists, vectors)
    assert ild[0] == pytest.approx(0.0)  # items 0 and 6: same genre
    assert ild[1] == pytest.approx(1 - 2 / 6)  # pairs (1,0):0 (1,6):0 (0,6):1 -> mean 1/3
    vectors_missing = vectors.copy()
    vectors_missing[6] = 0.0  # an item without categories leaves its pairs out
    assert np.isnan(M.intra_list_diversity(np.array([[0, 6]]), vectors_missing)[0])

    train = pd.DataFrame({"user": ["a", "a", "b", "c"], "item": ["1", "1", "1", "2"],
                          "rating": 1.0, "timestamp": 0})
    pop = M.item_popularity(train, tiny_dataset)
    assert pop[0] == pytest.approx((2 + 1) / (3 + 1))  # "1": users a, b
    assert pop[1] == pytest.approx(2 / 4) and pop[2] == pytest.approx(1 / 4)
    nov = M.novelty(np.array([[0, 2], [-1, -1]]), pop)
    assert nov[0] == pytest.approx((-math.log2(3 / 4) - math.log2(1 / 4)) / 2)
    assert np.isnan(nov[1])
