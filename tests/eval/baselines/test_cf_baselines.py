"""random, popularity, itemknn and EASE against brute-force references on the tiny data."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.data.dataset import History
from tastelens.eval.baselines.base import build
from tastelens.eval.baselines.interactions import user_item_matrix


def fitted(kind, config, make_context, train):
    recommender = build(kind, config, make_context())
    recommender.fit(train)
    return recommender


def dense_binary(train, dataset) -> np.ndarray:
    return user_item_matrix(train, dataset).toarray().astype(np.float64)


def test_random_depends_on_seed_and_user_only(make_context, tiny_eval):
    a = build("random", {}, make_context(seed=1))
    b = build("random", {"seed": 1}, make_context(seed=99))
    c = build("random", {}, make_context(seed=2))
    histories = tiny_eval.histories[:4]
    np.testing.assert_array_equal(a.score(histories), b.score(histories))
    assert not np.array_equal(a.score(histories), c.score(histories))
    scores = a.score(histories)
    assert not np.array_equal(scores[0], scores[1])  # users differ


def test_popularity_is_the_training_count(make_context, tiny_split, tiny_dataset, tiny_eval):
    model = fitted("popularity", {}, make_context, tiny_split.train)
    counts = tiny_split.train["item"].value_counts()
    expected = np.array([counts.get(i, 0) for i in tiny_dataset.item_ids], np.float32)
    np.testing.assert_array_equal(model.score(tiny_eval.histories[:2]), [expected, expected])


def cosine_reference(x: np.ndarray, shrinkage: float = 0.0) -> np.ndarray:
    norms = np.sqrt(x.sum(axis=0))
    denom = np.outer(norms, norms) + shrinkage
    sims = np.divide(x.T @ x, denom, out=np.zeros((x.shape[1],) * 2), where=denom > 0)
    np.fill_diagonal(sims, 0.0)
    return sims


@pytest.mark.parametrize("shrinkage", [0.0, 5.0])
def test_itemknn_without_pruning_is_plain_cosine(make_context, tiny_split, tiny_dataset,
                                                 shrinkage):
    model = fitted("itemknn", {"neighbors": 1000, "shrinkage": shrinkage, "block_size": 7},
                   make_context, tiny_split.train)
    reference = cosine_reference(dense_binary(tiny_split.train, tiny_dataset), shrinkage)
    np.testing.assert_allclose(model.similarity_.toarray(), reference, rtol=1e-5, atol=1e-6)


def test_itemknn_keeps_each_items_top_neighbours(make_context, tiny_split, tiny_dataset,
                                                 tiny_eval):
    model = fitted("itemknn", {"neighbors": 3}, make_context, tiny_split.train)
    reference = cosine_reference(dense_binary(tiny_split.train, tiny_dataset))
    sims = model.similarity_.toarray()
    for row in range(reference.shape[0]):
        kept = np.flatnonzero(sims[row])
        assert len(kept) <= 3
        if len(kept):
            # Nothing dropped is more similar than anything kept.
            assert reference[row, kept].min() >= np.delete(reference[row], kept).max() - 1e-6
    history = tiny_eval.histories[0]
    expected = sims[np.unique(history.items)].sum(axis=0)
    scores = model.score([history])[0]
    known = np.asarray(dense_binary(tiny_split.train, tiny_dataset).sum(axis=0) > 0)
    np.testing.assert_allclose(scores[known], expected[known], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ease_matches_the_closed_form(make_context, tiny_split, tiny_dataset, tiny_eval, dtype):
    model = fitted("ease", {"l2": 7.0, "dtype": dtype}, make_context, tiny_split.train)
    x = dense_binary(tiny_split.train, tiny_dataset)
    known = x.sum(axis=0) > 0
    xk = x[:, known]
    p = np.linalg.inv(xk.T @ xk + 7.0 * np.eye(xk.shape[1]))
    b = np.eye(xk.shape[1]) - p / np.diag(p)[None, :]
    np.testing.assert_allclose(model.model_.weights, b, rtol=1e-4, atol=1e-5)
    history = tiny_eval.histories[0]
    h = np.zeros(tiny_dataset.n_items)
    h[history.items] = 1.0
    np.testing.assert_allclose(model.score([history])[0][known], h[known] @ b,
                               rtol=1e-4, atol=1e-5)


def test_ease_ranks_rare_items_last(make_context, tiny_split, tiny_dataset, tiny_eval):
    model = fitted("ease", {"min_item_count": 8}, make_context, tiny_split.train)
    counts = dense_binary(tiny_split.train, tiny_dataset).sum(axis=0)
    rare = counts < 8
    assert rare.any() and (~rare).any()
    scores = model.score(tiny_eval.histories)
    assert (scores[:, rare].max(axis=1) < scores[:, ~rare].min(axis=1)).all()


def test_duplicate_history_items_count_once(make_context, tiny_split):
    model = fitted("itemknn", {}, make_context, tiny_split.train)
    once = History(user="u", items=np.array([1, 2]), ratings=np.full(2, np.nan, np.float32),
                   timestamps=np.full(2, -1))
    twice = History(user="u", items=np.array([1, 2, 1]), ratings=np.full(3, np.nan, np.float32),
                    timestamps=np.full(3, -1))
    np.testing.assert_array_equal(model.score([once]), model.score([twice]))
