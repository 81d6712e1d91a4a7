"""The learned re-ranker's features on small data: item statistics, each feature group, and
NaN where a feature does not apply (no profile, no timestamps, a catalog without years)."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest

from tastelens.agent.rank.features import (
    BASE_FEATURES,
    FEATURES,
    LLM_FEATURE,
    FeatureBuilder,
    ItemStats,
    RankRequest,
)
from tastelens.agent.recommendation import Candidate
from tastelens.data.dataset import Dataset
from tastelens.schemas import CategoryPreference, Interest, InterestProfile, Item
from tastelens.vectorstore.encoders import HashingEncoder

DAY = 86_400


def col(matrix: np.ndarray, name: str) -> np.ndarray:
    return matrix[:, FEATURES.index(name)]


class LastItemModel:
    """Collaborative stand-in: the user state is the newest item's one-hot vector row, and
    EASE scores favour ids near the newest item."""

    def __init__(self, n: int) -> None:
        rng = np.random.default_rng(0)
        self.item_vectors = rng.normal(size=(n, 8)).astype(np.float32)
        self.ease = object()

    def user_states(self, histories):  # noqa: ANN001, ANN201
        return np.stack([self.item_vectors[h[-1]] for h in histories])

    def ease_scores(self, histories):  # noqa: ANN001, ANN201
        n = len(self.item_vectors)
        return np.stack([-np.abs(np.arange(n) - h[-1]).astype(np.float32) for h in histories])


@pytest.fixture()
def catalog() -> Dataset:
    items = {str(i): Item(id=str(i), title=f"Film {i}", year=1990 + i,
                          categories=("Comedy",) if i % 2 else ("Horror",))
             for i in range(10)}
    rows = [("a", "0", 4.0, 100 * DAY), ("a", "1", 5.0, 101 * DAY), ("b", "1", 2.0, 50 * DAY),
            ("b", "2", 4.0, 300 * DAY), ("c", "3", np.nan, 10 * DAY)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return Dataset(name="small", items=items, interactions=frame)


def builder(dataset: Dataset, collaborative=None) -> FeatureBuilder:  # noqa: ANN001
    encoder = HashingEncoder(64)
    docs = {i: it.document() for i, it in dataset.items.items()}
    return FeatureBuilder(dataset, collaborative=collaborative,
                          stats=ItemStats.from_events(dataset.interactions, dataset),
                          item_vectors=lambda ids: encoder.encode([docs[i] for i in ids]),
                          encode=encoder.encode)


def profile() -> InterestProfile:
    return InterestProfile(
        user="a", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), history_hash="h",
        n_items=2, interests=[Interest(label="slapstick comedy", granularity="topic", weight=1.0)],
        dislikes=[Interest(label="Horror", granularity="topic", weight=0.8,
                           polarity="dislike")],
        categories=[CategoryPreference(category="Comedy", weight=1.0, count=2)],
        long_term={"Comedy": 0.7, "Horror": 0.3}, recent={"Comedy": 0.9, "Horror": 0.1})


def request(dataset: Dataset, *, with_profile: bool = True, timed: bool = True) -> RankRequest:
    idx = dataset.item_index
    cands = [Candidate(item="5", score=0.3, ranks={"collaborative": 1, "Comedy": 4}),
             Candidate(item="4", score=0.2, ranks={"cooccurrence": 2}),
             Candidate(item="7", score=0.1, source="explored")]
    return RankRequest(history=np.array([idx["0"], idx["1"]]), ratings=np.array([4.0, 5.0]),
                       timestamps=np.array([100 * DAY, 101 * DAY] if timed else [-1, -1]),
                       profile=profile() if with_profile else None, candidates=cands,
                       wishes=["funny"], seeds=["3"])


def test_item_stats_count_smooth_and_window(catalog) -> None:  # noqa: ANN001
    stats = ItemStats.from_events(catalog.interactions, catalog)
    idx = catalog.item_index
    items = np.array([idx["1"], idx["9"], idx["3"]])
    count, mean, first = stats.as_of(items, None)
    np.testing.assert_array_equal(count, [2, 0, 1])
    prior = np.nanmean([4.0, 5.0, 2.0, 4.0])
    # Two ratings (5, 2) shrunk towards the global mean with 5 pseudo-ratings; item 3's one
    # event is unrated.
    np.testing.assert_allclose(mean, [(7.0 + 5 * prior) / 7, prior, prior])
    assert first[0] == 50 * DAY and np.isnan(first[1]) and first[2] == 10 * DAY
    assert stats.latest == 300 * DAY
    recent = stats.recent_counts(101 * DAY, days=90)  # (11, 101] days: not item 3 at day 10
    assert recent[idx["0"]] == 1 and recent[idx["1"]] == 2 and recent[idx["3"]] == 0


def test_item_stats_as_of_a_moment_ignore_later_events(catalog) -> None:  # noqa: ANN001
    stats = ItemStats.from_events(catalog.interactions, catalog)
    idx = catalog.item_index
    items = np.array([idx["1"], idx["2"]])
    count, mean, first = stats.as_of(items, 60 * DAY)  # only b's rating of "1" (day 50)
    np.testing.assert_array_equal(count, [1, 0])
    prior = np.nanmean([4.0, 5.0, 2.0, 4.0])
    np.testing.assert_allclose(mean, [(2.0 + 5 * prior) / 6, prior])
    assert first[0] == 50 * DAY and np.isnan(first[1])  # "2" is first seen on day 300
    count, _, _ = stats.as_of(items, 101 * DAY)  # the moment itself counts
    np.testing.assert_array_equal(count, [2, 0])


def test_item_features_never_read_events_after_the_history(catalog) -> None:  # noqa: ANN001
    req = request(catalog)  # newest history event: day 101
    req.candidates = [Candidate(item="2", score=0.1)]  # first seen on day 300
    x = builder(catalog).build([req])[0]
    assert col(x, "log_pop")[0] == 0 and np.isnan(col(x, "item_age")[0])
    assert col(x, "log_pop_recent")[0] == 0


def test_every_group_is_filled(catalog) -> None:  # noqa: ANN001
    x = builder(catalog, LastItemModel(catalog.n_items)).build([request(catalog)])[0]
    assert x.shape == (3, len(FEATURES)) and x.dtype == np.float32
    np.testing.assert_array_equal(col(x, "retrieval_pos"), [0, 1, 2])
    np.testing.assert_allclose(col(x, "retrieval_score"), [0.3, 0.2, 0.1], rtol=1e-6)
    assert col(x, "rank_collaborative")[0] == 1 and np.isnan(col(x, "rank_collaborative")[1])
    assert col(x, "rank_cooccurrence")[1] == 2
    assert col(x, "rank_category")[0] == 4 and np.isnan(col(x, "rank_interest")[0])
    np.testing.assert_array_equal(col(x, "explored"), [0, 0, 1])
    # EASE favours ids near the newest item ("1"): "4" is nearer than "5" and "7".
    ease_rank = col(x, "ease_rank")
    assert ease_rank[1] < ease_rank[0] < ease_rank[2]
    assert np.isfinite(col(x, "sasrec_score")).all()
    # Comedy candidates (odd ids) match the liked interest's category share and no dislike.
    np.testing.assert_allclose(col(x, "cat_long"), [0.7, 0.3, 0.7])
    np.testing.assert_allclose(col(x, "cat_drift"), [0.2, -0.2, 0.2], atol=1e-6)
    np.testing.assert_allclose(col(x, "cat_disliked"), [0.0, 0.8, 0.0])
    for name in ("interest_sim_max", "dislike_sim_max", "recent_sim", "liked_sim",
                 "wish_sim", "seed_sim", "log_pop", "mean_rating", "log_pop_recent",
                 "year_gap", "log_history"):
        assert np.isfinite(col(x, name)).all(), name
    assert np.isnan(col(x, "item_age")).all()  # no candidate was ever seen: age unknown
    np.testing.assert_allclose(col(x, "year_gap"), [5 - 0.5, 4 - 0.5, 7 - 0.5])
    assert np.isnan(col(x, LLM_FEATURE)).all()


def test_missing_inputs_are_nan_not_errors(catalog) -> None:  # noqa: ANN001
    req = request(catalog, with_profile=False, timed=False)
    req.wishes, req.seeds = [], []
    x = builder(catalog).build([req])[0]  # no collaborative models either
    for name in ("sasrec_score", "ease_rank", "interest_sim_max", "cat_long", "wish_sim",
                 "seed_sim"):
        assert np.isnan(col(x, name)).all(), name
    # A history without timestamps (ids from the API or the chat) is as of the data's newest
    # event, as training cases are as of theirs: the time features are there.
    assert np.isfinite(col(x, "log_pop")).all() and np.isfinite(col(x, "log_pop_recent")).all()


def test_a_catalog_without_categories_or_years(catalog) -> None:  # noqa: ANN001
    bare = Dataset(name="bare", items={i: Item(id=i, title=f"Thing {i}")
                                       for i in catalog.items},
                   interactions=catalog.interactions)
    x = builder(bare, LastItemModel(bare.n_items)).build([request(bare)])[0]
    assert np.isnan(col(x, "year_gap")).all() and np.isnan(col(x, "cat_long")).all()
    assert np.isfinite(col(x, "sasrec_rank")).all()


def test_llm_scores_fill_their_column_only_for_shown_candidates(catalog) -> None:  # noqa: ANN001
    req = request(catalog)
    req.llm_scores = {"5": -0.2, "4": -3.0}
    x = builder(catalog).build([req])[0]
    np.testing.assert_allclose(col(x, LLM_FEATURE)[:2], [-0.2, -3.0])
    assert np.isnan(col(x, LLM_FEATURE)[2])
    assert FEATURES[: len(BASE_FEATURES) + 1] == (*BASE_FEATURES, LLM_FEATURE)


def test_interest_features_match_candidate_descriptors_to_the_profile() -> None:
    items = {str(i): Item(id=str(i), title=f"Film {i}", year=1990 + i,
                          categories=("Crime",), keywords=kw)
             for i, kw in enumerate([("heist", "vault"), ("heist",), ("space",), (),
                                     ("slapstick",)])}
    frame = pd.DataFrame([("a", "0", 5.0, DAY)],
                         columns=["user", "item", "rating", "timestamp"])
    ds = Dataset(name="kw", items=items, interactions=frame)
    prof = profile().model_copy(update={
        "interests": [Interest(label="heist", granularity="keyword", weight=1.0,
                               descriptors=["heist"], trend=0.5),
                      Interest(label="Crime: heist, vault", granularity="topic", weight=0.5,
                               descriptors=["heist", "vault"])],
        "dislikes": [Interest(label="slapstick", granularity="keyword", weight=0.8,
                              polarity="dislike", descriptors=["slapstick"])]})
    req = RankRequest(history=np.array([0]), ratings=np.array([5.0]),
                      timestamps=np.array([DAY]), profile=prof,
                      candidates=[Candidate(item=i, score=1.0) for i in ("1", "2", "3", "4")])
    x = builder(ds).build([req])[0]
    np.testing.assert_allclose(col(x, "interest_kw")[:2], [1.0, 0.0])
    np.testing.assert_allclose(col(x, "interest_kw_drift")[:1], [1.5])  # rising: weighs more
    np.testing.assert_allclose(col(x, "interest_topic")[:2], [0.25, 0.0])  # 1 of 2 × 0.5
    assert col(x, "interest_idf")[0] > 0 and col(x, "interest_idf")[1] == 0
    np.testing.assert_allclose(col(x, "interest_dislike")[[0, 3]], [0.0, 0.8])
    assert np.isnan(col(x, "interest_kw")[2])  # a candidate without descriptors: missing
    plain_ds = catalog_without_descriptors()
    plain = builder(plain_ds).build([request(plain_ds)])[0]
    assert np.isnan(col(plain, "interest_kw")).all()  # a profile without them: missing


def catalog_without_descriptors() -> Dataset:
    items = {str(i): Item(id=str(i), title=f"Film {i}", year=1990 + i,
                          categories=("Comedy",) if i % 2 else ("Horror",))
             for i in range(10)}
    frame = pd.DataFrame([("a", "0", 4.0, 100 * DAY), ("a", "1", 5.0, 101 * DAY)],
                         columns=["user", "item", "rating", "timestamp"])
    return Dataset(name="plain", items=items, interactions=frame)


def test_vectors_and_labels_are_read_once_per_batch(catalog) -> None:  # noqa: ANN001
    calls: list[int] = []
    encoder = HashingEncoder(32)
    b = FeatureBuilder(catalog, collaborative=None,
                       stats=ItemStats.from_events(catalog.interactions, catalog),
                       item_vectors=lambda ids: calls.append(len(ids)) or encoder.encode(ids),
                       encode=encoder.encode)
    b.build([request(catalog), request(catalog)])
    b.build([request(catalog)])
    assert len(calls) == 1  # one read for both users; the second batch is cached
