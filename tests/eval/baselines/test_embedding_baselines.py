"""embed-mean / embed-recency: the arithmetic, and that the in-memory ranking equals the
Chroma query path (with the fake index, and with a real embedded Chroma index)."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.data.dataset import History
from tastelens.errors import UnknownComponentError
from tastelens.eval.baselines.base import SystemContext, build


def fitted(kind, config, context, train):
    recommender = build(kind, config, context)
    recommender.fit(train)
    return recommender


def unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def test_embed_mean_is_cosine_to_the_mean_vector(make_context, tiny_split, tiny_eval,
                                                 fake_item_index):
    model = fitted("embed-mean", {}, make_context(), tiny_split.train)
    history = tiny_eval.histories[0]
    vectors = fake_item_index.vectors
    expected = vectors @ unit(vectors[history.items].mean(axis=0))
    np.testing.assert_allclose(model.score([history])[0], expected, rtol=1e-5, atol=1e-6)


def test_recency_weights_halve_every_half_life(make_context):
    model = build("embed-recency", {"half_life": 2.0}, make_context())
    np.testing.assert_allclose(model.weights(5), [0.25, 2 ** -1.5, 0.5, 2 ** -0.5, 1.0])


def test_short_half_life_follows_the_newest_item(make_context, tiny_split, tiny_eval,
                                                 fake_item_index):
    model = fitted("embed-recency", {"half_life": 0.01}, make_context(), tiny_split.train)
    history = tiny_eval.histories[0]
    expected = fake_item_index.vectors @ fake_item_index.vectors[history.items[-1]]
    np.testing.assert_allclose(model.score([history])[0], expected, rtol=1e-4, atol=1e-5)


def test_needs_the_item_index(tiny_dataset, tiny_split, tmp_path):
    model = build("embed-mean", {}, SystemContext(dataset=tiny_dataset, work_dir=tmp_path))
    assert model.needs == ("item_index",)
    with pytest.raises(UnknownComponentError, match="item_index"):
        model.fit(tiny_split.train)


def assert_same_top_k(matrix: np.ndarray, chroma: np.ndarray, k: int = 10) -> None:
    """Same top-k per row: identical scores, and identical ids wherever no tie straddles
    the k-th place."""
    for row in range(matrix.shape[0]):
        top = np.argsort(-chroma[row], kind="stable")[:k]
        assert np.isfinite(chroma[row, top]).all()
        np.testing.assert_allclose(chroma[row, top], matrix[row, top], atol=1e-5)
        want = np.sort(matrix[row])[::-1]
        np.testing.assert_allclose(np.sort(chroma[row, top])[::-1], want[:k], atol=1e-5)
        if want[k - 1] - want[k] > 1e-5:
            assert set(top) == set(np.argsort(-matrix[row])[:k])


@pytest.mark.parametrize("kind", ["embed-mean", "embed-recency"])
def test_chroma_query_path_agrees_on_the_top_10(kind, make_context, tiny_split, tiny_eval,
                                                fake_item_index):
    matrix = fitted(kind, {}, make_context(), tiny_split.train)
    chroma = fitted(kind, {"use_chroma_query": True, "chroma_top_n": 15}, make_context(),
                    tiny_split.train)
    before = fake_item_index.queries
    got = chroma.score(tiny_eval.histories)
    assert fake_item_index.queries == before + 1  # one batched query, not one per user
    assert np.isneginf(got).sum(axis=1).tolist() == [got.shape[1] - 15] * got.shape[0]
    assert_same_top_k(matrix.score(tiny_eval.histories), got)


def test_one_item_history(make_context, tiny_split, fake_item_index):
    model = fitted("embed-mean", {}, make_context(), tiny_split.train)
    one = History(user="x", items=np.array([4]), ratings=np.full(1, np.nan, np.float32),
                  timestamps=np.full(1, -1))
    scores = model.score([one])[0]
    assert scores.argmax() == 4 and scores[4] == pytest.approx(1.0, abs=1e-5)


def test_chroma_path_handles_an_empty_history(make_context, tiny_split, tiny_eval):
    model = fitted("embed-mean", {"use_chroma_query": True, "chroma_top_n": 15}, make_context(),
                   tiny_split.train)
    empty = History(user="x", items=np.zeros(0, np.int64), ratings=np.zeros(0, np.float32),
                    timestamps=np.zeros(0, np.int64))
    scores = model.score([empty, tiny_eval.histories[0]])
    assert (scores[0] == 0).all()
    assert np.isfinite(scores[1]).sum() == model.config.chroma_top_n


@pytest.mark.integration
@pytest.mark.parametrize("kind", ["embed-mean", "embed-recency"])
def test_real_chroma_index_agrees_with_the_matrix(kind, tiny_dataset, tiny_split, tiny_eval,
                                                  tmp_path):
    from tastelens.config.settings import Settings
    from tastelens.vectorstore.encoders import HashingEncoder
    from tastelens.vectorstore.item_index import ItemIndex

    index = ItemIndex.for_dataset(Settings(cache_dir=tmp_path), "tiny", HashingEncoder(64))
    index.build(tiny_dataset.items.values(), progress=False)
    context = SystemContext(dataset=tiny_dataset, work_dir=tmp_path,
                            resources={"item_index": index})
    matrix = fitted(kind, {}, context, tiny_split.train)
    chroma = fitted(kind, {"use_chroma_query": True, "chroma_top_n": 10}, context,
                    tiny_split.train)
    assert_same_top_k(matrix.score(tiny_eval.histories), chroma.score(tiny_eval.histories))
