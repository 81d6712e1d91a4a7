"""The candidate retriever on a small themed catalog in a temporary embedded Chroma.

Items combine a genre and a theme ("heist", "robot", ...), so the hashing encoder's word
overlap gives meaningful neighbours: a "heist" interest finds heist items of any genre.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from tastelens.agent.recommendation import Candidate, Constraints
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.pipeline import ExploreConfig, PriorConfig, RetrieverConfig
from tastelens.config.settings import ChromaSettings, Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError, UnknownIdError, VectorIndexError
from tastelens.schemas import CategoryPreference, Interest, InterestProfile, Item
from tastelens.vectorstore.chroma_client import open_client
from tastelens.vectorstore.collection import BehaviourIndex
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

GENRES = ("Action", "Comedy", "Horror", "Animation", "Drama", "Romance")
THEMES = ("heist vault", "robot space", "zombie outbreak", "wedding love", "school friends")


def make_catalog(n_items: int = 90) -> Dataset:
    items = {}
    for i in range(1, n_items + 1):
        genre, theme = GENRES[i % len(GENRES)], THEMES[(i // len(GENRES)) % len(THEMES)]
        items[str(i)] = Item(id=str(i), title=f"{theme.split()[0].title()} {genre} {i}",
                             year=1950 + i % 60, categories=(genre,), tags=tuple(theme.split()))
    rows = [("u1", str(i), 4.0, 1000 + i) for i in (1, 2, 3)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return Dataset(name="themed", items=items, interactions=frame)


@pytest.fixture(scope="module")
def catalog() -> Dataset:
    return make_catalog()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("retrieve-chroma")
    return open_client(Settings(cache_dir=root, chroma=ChromaSettings(mode="embedded")))


@pytest.fixture(scope="module")
def index(client, catalog: Dataset) -> ItemIndex:
    idx = ItemIndex(client, "retrieve-items", HashingEncoder(dim=512))
    idx.build(catalog.items.values(), progress=False)
    return idx


def profile(interests=(), categories=(), dislikes=(), explore=()) -> InterestProfile:
    return InterestProfile(
        user="u1", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), history_hash="h",
        n_items=3, explore_next=list(explore),
        interests=[Interest(label=label, granularity="keyword", weight=w, evidence=ev)
                   for label, w, ev in interests],
        dislikes=[Interest(label=label, granularity="topic", weight=w, polarity="dislike",
                           evidence=ev) for label, w, ev in dislikes],
        categories=[CategoryPreference(category=c, weight=w, count=1) for c, w in categories])


HEIST = profile(interests=[("heist", 1.0, ["1"]), ("robot", 0.5, ["7"])],
                categories=[("Action", 0.6), ("Comedy", 0.4)])


def retriever(catalog, index, **config) -> Retriever:
    # 18 items per theme: a per-query k below that keeps each query's answer on its theme.
    config.setdefault("per_query_k", 15)
    return Retriever(RetrieverConfig(**config), dataset=catalog, item_index=index)


def ids(cands: list[Candidate]) -> list[str]:
    return [c.item for c in cands]


def theme_of(catalog: Dataset, item: str) -> str:
    return catalog.items[item].tags[0]


# -- config ---------------------------------------------------------------------------

def test_config_round_trips_and_validates() -> None:
    cfg = RetrieverConfig(mmr_lambda=0.7, explore=ExploreConfig(slots=2))
    assert RetrieverConfig.model_validate_json(cfg.model_dump_json()) == cfg
    with pytest.raises(ValidationError):
        RetrieverConfig(n_candidates=4)
    with pytest.raises(ValidationError):
        RetrieverConfig(n_candidates=201)
    with pytest.raises(ValidationError):
        RetrieverConfig(bogus=1)


def test_n_defaults_to_config_and_is_checked(catalog, index) -> None:
    r = retriever(catalog, index, n_candidates=12)
    assert len(r.retrieve(HEIST, ["1"])) == 12
    assert len(r.retrieve(HEIST, ["1"], n=7)) == 7
    with pytest.raises(ConfigError, match="1..200"):
        r.retrieve(HEIST, ["1"], n=0)


# -- what comes back ------------------------------------------------------------------

def test_interests_drive_candidates_and_matched_labels(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=0))
    cands = r.retrieve(HEIST, [], n=10)
    # The strongest interest ("heist", weight 1) dominates the top of the list. (The hashing
    # encoder ties many items, and Chroma orders ties arbitrarily: assert counts, not order.)
    themes = [theme_of(catalog, c.item) for c in cands]
    assert themes.count("heist") > themes.count("robot")
    # The weaker one ("robot", 0.5) is retrieved too, further down: whether one of its items
    # reaches the first 10 depends on how the "Action" query's ties fall (a CI run's did not).
    assert any("robot" in c.matched for c in r.retrieve(HEIST, [], n=40))
    assert all(c.source == "retrieved" for c in cands)
    assert "heist" in cands[0].matched
    scores = [c.score for c in cands]
    assert scores == sorted(scores, reverse=True)
    assert {lab for c in cands for lab in c.matched} <= {"heist", "robot", "Action", "Comedy"}


def test_evidence_titles_enrich_interest_queries(catalog, index) -> None:
    zombie = next(i for i, it in catalog.items.items() if it.tags[0] == "zombie")
    vague = profile(interests=[("weekend mood", 1.0, [zombie])])
    with_titles = retriever(catalog, index, evidence_titles=1, explore=ExploreConfig(slots=0))
    label_only = retriever(catalog, index, evidence_titles=0, explore=ExploreConfig(slots=0))
    assert theme_of(catalog, with_titles.retrieve(vague, [zombie], n=5)[0].item) == "zombie"
    themes = [theme_of(catalog, c.item) for c in label_only.retrieve(vague, [zombie], n=10)]
    assert themes.count("zombie") < 10


def test_seen_and_excluded_items_never_come_back(catalog, index) -> None:
    r = retriever(catalog, index, per_query_k=50)
    free = ids(r.retrieve(HEIST, [], n=40))
    history, excluded = free[:5], free[5:8]
    got = ids(r.retrieve(HEIST, history, Constraints(exclude_items=excluded), n=40))
    assert not set(got) & set(history + excluded)
    assert len(got) == 40 and len(set(got)) == 40


def test_category_and_year_filters_are_hard(catalog, index) -> None:
    r = retriever(catalog, index)
    # Exclusion applies to exploit and explore candidates alike, even for a category the
    # user's own interests point to.
    c = Constraints(exclude_categories=["Action", "Animation"], year_min=1960, year_max=1995)
    cands = r.retrieve(profile(interests=[("heist", 1.0, [])], categories=[("Action", 1.0)],
                               explore=["Animation", "Horror"]), [], c, n=30)
    assert cands
    for cand in cands:
        item = catalog.items[cand.item]
        assert not set(item.categories) & {"Action", "Animation"}
        assert 1960 <= item.year <= 1995
    # Inclusion is pushed into the Chroma query: there are 15 Horror items, and post-filtering
    # 50 unfiltered heist hits alone could not find them all.
    horror = r.retrieve(HEIST, [], Constraints(include_categories=["Horror"]), n=15)
    assert len(horror) == 15
    assert all(catalog.items[c.item].categories == ("Horror",) for c in horror)


def test_seed_items_pull_in_their_neighbours(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=0))
    zombie_seed = next(i for i, it in catalog.items.items() if it.tags[0] == "zombie")
    cands = r.retrieve(HEIST, [], Constraints(seed_items=[zombie_seed]), n=10)
    assert zombie_seed not in ids(cands)  # the seed itself is not a recommendation
    assert cands[0].matched[0] == f"seed:{zombie_seed}"
    assert theme_of(catalog, cands[0].item) == "zombie"


def test_unknown_seed_ids_are_named(catalog, index, client) -> None:
    with pytest.raises(UnknownIdError, match="'nope'"):
        retriever(catalog, index).retrieve(HEIST, [], Constraints(seed_items=["nope"]))
    # In the dataset but not in the index (a stale index): named too, with the fix.
    partial = ItemIndex(client, "retrieve-partial", HashingEncoder(dim=512))
    partial.build([catalog.items["1"], catalog.items["2"]], progress=False)
    r = Retriever(RetrieverConfig(), dataset=catalog, item_index=partial)
    with pytest.raises(UnknownIdError, match="'7'.*index build"):
        r.retrieve(HEIST, [], Constraints(seed_items=["7"]))


def test_missing_index_says_how_to_build_it(catalog, client) -> None:
    missing = ItemIndex(client, "retrieve-missing", HashingEncoder(dim=512))
    with pytest.raises(VectorIndexError, match="tastelens index build"):
        Retriever(dataset=catalog, item_index=missing).retrieve(HEIST, [])


def test_free_text_wishes_are_queries(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=0))
    cands = r.retrieve(HEIST, [], Constraints(queries=["wedding love"]), n=10)
    assert cands[0].matched[0] == "wedding love"
    assert theme_of(catalog, cands[0].item) == "wedding"


def test_dislikes_demote(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=0), weights={"dislike": 1.0})
    base = profile(interests=[("heist", 1.0, [])], categories=[("Action", 1.0)])
    before = {c.item: c.score for c in r.retrieve(base, [], n=40)}
    hated = base.model_copy(update={"dislikes": [
        Interest(label="Comedy", granularity="topic", weight=1.0, polarity="dislike")]})
    after = {c.item: c.score for c in r.retrieve(hated, [], n=40)}
    comedy = [i for i in before if "Comedy" in catalog.items[i].categories]
    assert comedy
    for i in comedy:
        if i in after:
            assert after[i] == pytest.approx(before[i] * 0.5)  # 1 − penalty 0.5 × weight 1
    # A disliked item demotes what resembles it (negative query on its stored vector).
    zombie = next(i for i, it in catalog.items.items() if it.tags[0] == "zombie")
    fans = profile(interests=[("zombie", 1.0, []), ("heist", 0.6, [])])
    plain = ids(r.retrieve(fans, [], n=10))
    demoted = ids(r.retrieve(fans.model_copy(update={"dislikes": [Interest(
        label="that zombie film", granularity="keyword", weight=1.0, polarity="dislike",
        evidence=[zombie])]}), [], n=10))
    zombies = [sum(theme_of(catalog, i) == "zombie" for i in got) for got in (plain, demoted)]
    assert zombies[0] >= 7 and zombies[1] <= zombies[0] - 4


def test_mmr_diversifies(catalog, index) -> None:
    def mean_sim(items: list[str]) -> float:
        v = index.embeddings(items)
        sims = v @ v.T
        return float(sims[~np.eye(len(items), dtype=bool)].mean())

    one_theme = profile(interests=[("heist", 1.0, []), ("vault", 0.9, [])],
                        categories=[("Action", 1.0)])
    plain = retriever(catalog, index, explore=ExploreConfig(slots=0)).retrieve(
        one_theme, [], n=10)
    diverse = retriever(catalog, index, explore=ExploreConfig(slots=0), mmr_lambda=0.3,
                        ).retrieve(one_theme, [], n=10)
    assert ids(plain) != ids(diverse)
    assert ids(diverse)[0] == ids(plain)[0]  # the first pick is the most relevant
    assert mean_sim(ids(diverse)) < mean_sim(ids(plain)) - 0.05


def test_explore_slots_are_marked_and_appended(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=3))
    cands = r.retrieve(profile(interests=[("heist", 1.0, [])], categories=[("Action", 1.0)],
                               explore=["Animation"]), [], n=12)
    assert len(cands) == 12
    assert [c.source for c in cands] == ["retrieved"] * 9 + ["explored"] * 3
    explored = cands[9:]
    assert all(catalog.items[c.item].categories == ("Animation",) for c in explored)
    assert all(c.matched == ["Animation"] for c in explored)
    # The category slot asks the user's anchor text inside the new category: heists first.
    assert theme_of(catalog, explored[0].item) == "heist"
    assert not set(ids(explored)) & set(ids(cands[:9]))


def test_explore_skips_what_the_exploit_list_already_holds(catalog, index) -> None:
    # "heist vault" is this user's main taste: its best hits are exploit candidates already.
    p = profile(interests=[("heist", 1.0, [])], explore=["heist vault"])
    exploit = retriever(catalog, index, explore=ExploreConfig(slots=0)).retrieve(p, [], n=9)
    cands = retriever(catalog, index, explore=ExploreConfig(slots=3)).retrieve(p, [], n=12)
    explored = [c.item for c in cands if c.source == "explored"]
    assert len(explored) == 3 and ids(cands[:9]) == ids(exploit)
    assert not set(explored) & set(ids(exploit))


def test_explore_falls_back_to_adjacent_categories(catalog, index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=2))
    cands = r.retrieve(HEIST, [], n=10)
    explored = [c for c in cands if c.source == "explored"]
    assert len(explored) == 2 and cands[-2:] == explored
    # Single-genre catalog: the under-exposure rule proposes categories the user lacks.
    for c in explored:
        assert not set(catalog.items[c.item].categories) & {"Action", "Comedy"}
    none = retriever(catalog, index, explore=ExploreConfig(slots=0)).retrieve(HEIST, [], n=10)
    assert all(c.source == "retrieved" for c in none)


# -- batching and the behaviour vector ------------------------------------------------

def test_retrieve_many_equals_retrieve_and_encodes_once(catalog, index) -> None:
    r = retriever(catalog, index, mmr_lambda=0.6)
    users = [
        (HEIST, ["1", "2"], None),
        (profile(interests=[("zombie", 1.0, ["3"])], categories=[("Horror", 1.0)],
                 explore=["Romance"]), [str(i) for i in range(10, 40)],
         Constraints(exclude_categories=["Drama"], queries=["school friends"])),
        (profile(categories=[("Romance", 1.0)], dislikes=[("Comedy", 0.8, [])]), [],
         Constraints(seed_items=["5"], year_min=1970)),
    ]
    encoder = index.encoder
    calls = encoder.calls
    batched = r.retrieve_many([u[0] for u in users], [u[1] for u in users],
                              [u[2] for u in users], n=15)
    assert encoder.calls == calls + 1
    one_by_one = [r.retrieve(p, h, c, n=15) for p, h, c in users]
    assert batched == one_by_one
    assert all(len(b) == 15 for b in batched)
    with pytest.raises(ConfigError):
        r.retrieve_many([HEIST], [[], []])


class TwinModel:
    """A stand-in for the collaborative models: the user state is the newest history item's
    vector (so its inner-product neighbours are that item's "co-watched" twin), and the
    item-item model scores an item by its id's distance to the newest history item."""

    def __init__(self, vectors: np.ndarray, ease: bool = True) -> None:
        self.vectors = vectors
        self.ease = object() if ease else None
        self.encoded: list[int] = []

    def user_states(self, histories):  # noqa: ANN001, ANN201
        self.encoded.append(len(histories))
        return np.stack([self.vectors[h[-1]] for h in histories])

    def ease_scores(self, histories):  # noqa: ANN001, ANN201
        n = len(self.vectors)
        return np.stack([-np.abs(np.arange(n) - h[-1]).astype(np.float32) for h in histories])


def test_collaborative_sources_come_from_the_models(catalog, index, client) -> None:
    # Collaborative vectors unrelated to the text: items i and i+45 are "co-watched".
    rng = np.random.default_rng(0)
    base = rng.normal(size=(45, 16)).astype(np.float32)
    vectors = np.concatenate([base, base + 0.01])
    item_ids = [str(i) for i in range(1, 91)]
    behaviour = BehaviourIndex(client, "retrieve-behaviour", model="test-seq")
    behaviour.replace_all(item_ids, vectors)
    model = TwinModel(vectors)
    r = Retriever(RetrieverConfig(explore=ExploreConfig(slots=0), collaborative_k=5),
                  dataset=catalog, item_index=index, behaviour_index=behaviour,
                  collaborative=model)  # type: ignore[arg-type]
    cands = r.retrieve(profile(categories=[("Drama", 1.0)]), ["30", "7"], n=10)
    # "7" is catalog index 6; its twin is index 51, item "52".
    assert cands[0].item == "52"
    assert cands[0].matched[0] == "collaborative" and cands[0].ranks["collaborative"] == 1
    assert "7" not in ids(cands) and "30" not in ids(cands)
    # The item-item list: the ids next to the newest item ("6", "8", ...), seen ones left out.
    near = [c for c in cands if "cooccurrence" in c.ranks]
    assert {c.item for c in near} >= {"6", "8"}
    # Model hits obey the hard filters although the behaviour collection has no metadata.
    excl = r.retrieve(profile(categories=[("Drama", 1.0)]), ["7"],
                      Constraints(exclude_categories=[catalog.items["52"].categories[0]]))
    assert "52" not in ids(excl)
    # All users' states come from one encoder pass.
    model.encoded.clear()
    r.retrieve_many([HEIST, HEIST, HEIST], [["7"], ["8"], []], n=10)
    assert model.encoded == [2]
    # A behaviour index that was never written skips the sequence model, not an error.
    absent = BehaviourIndex(client, "retrieve-behaviour-none", model="test-seq")
    r2 = Retriever(RetrieverConfig(), dataset=catalog, item_index=index,
                   behaviour_index=absent, collaborative=TwinModel(vectors, ease=False))
    assert all("collaborative" not in c.matched for c in r2.retrieve(HEIST, ["7"]))


def test_nothing_to_ask_returns_nothing(catalog, index) -> None:
    empty = profile()
    assert retriever(catalog, index, explore=ExploreConfig(slots=0)).retrieve(empty, []) == []



def test_query_texts_embedded_once_are_not_embedded_again(catalog, index, monkeypatch) -> None:
    r = retriever(catalog, index)
    asked: list[list[str]] = []
    encode = index.encoder.encode
    monkeypatch.setattr(index.encoder, "encode",
                        lambda texts: asked.append(list(texts)) or encode(texts))
    first = r.retrieve(HEIST, ["1"])
    assert asked and "Genres: Action" in asked[0]
    again = r.retrieve(HEIST, ["1"])  # the next chat turn: the same profile texts
    assert len(asked) == 1 and ids(again) == ids(first)
    r.retrieve(HEIST, ["1"], Constraints(queries=["robot heist"]))
    assert asked[1:] == [["robot heist"]]  # only the new text


# -- the popularity prior ------------------------------------------------------------------
class PriorModels:
    """Collaborative models with only the popularity prior (no sequence or item-item model)."""

    def __init__(self, catalog: Dataset, counts: dict[str, int]) -> None:
        from tastelens.vectorstore.popularity import PopularityPrior

        index = catalog.item_index
        sequences = [np.array([index[i]]) for i, n in counts.items() for _ in range(n)]
        self.prior = PopularityPrior.fit(sequences, catalog)
        self.ease = None


def test_a_request_that_says_little_gets_the_popular_items_it_allows(catalog, index) -> None:
    models = PriorModels(catalog, {"3": 9, "10": 7, "5": 5, "9": 3, "15": 2})  # 3/9/15: Animation
    r = Retriever(RetrieverConfig(explore=ExploreConfig(slots=0),
                                  prior=PriorConfig(freshness=0.0)),
                  dataset=catalog, item_index=index, collaborative=models)  # type: ignore[arg-type]
    empty = profile()
    first = r.retrieve(empty, [], n=5)
    assert [c.item for c in first] == ["3", "10", "5", "9", "15"]
    assert first[0].matched == ["prior"] and first[0].ranks == {"prior": 1}
    only = r.retrieve(empty, [], Constraints(include_categories=["Animation"],
                                             exclude_items=["9"]), n=5)
    assert [c.item for c in only] == ["3", "15"]
    # a long history is the user's own evidence: the prior is not asked
    long = r.retrieve(HEIST, [str(i) for i in range(30, 37)], n=5)
    assert all("prior" not in c.matched for c in long)


def test_the_prior_counts_each_sequence_once_and_prefers_fresh_items(catalog) -> None:
    from tastelens.vectorstore.popularity import PopularityPrior

    index = catalog.item_index
    # item "1" (1951): 3 sequences, one holding it twice; item "59" (2009): 2 sequences
    seqs = [np.array([index["1"], index["1"]]), np.array([index["1"]]),
            np.array([index["1"], index["59"]]), np.array([index["59"]])]
    prior = PopularityPrior.fit(seqs, catalog)
    assert prior.counts[index["1"]] == 3 and prior.counts[index["59"]] == 2
    assert prior.order(0.0)[0] == index["1"]
    assert prior.order(1.0)[0] == index["59"]  # 58 years older costs more than 3 vs 2
    assert prior.top(5, lambda i: True) == [index["1"], index["59"]]  # never-seen: none


def test_words_of_a_wish_that_name_descriptors_find_the_items_carrying_them(catalog,
                                                                          index) -> None:
    r = retriever(catalog, index, explore=ExploreConfig(slots=0))
    plan = r.planner.plan(profile(), [], Constraints(queries=["any zombies, please"]), n=10)
    assert [(q.label, q.target, q.terms) for q in plan.queries if q.target == "descriptor"] \
        == [("zombie", "descriptor", ("zombie",))]  # "zombies" names the tag "zombie"
    # function words, request words and category names never become descriptor queries
    assert r.planner.descriptor_terms(["some good action movies with a robot"]) == ["robot"]
    # 30: room for both queries' 15 hits, so the assertion does not hang on fusion ties
    cands = r.retrieve(profile(), [], Constraints(queries=["any zombies, please"]), n=30)
    found = [c for c in cands if "zombie" in c.matched]
    assert found and all("zombie" in catalog.items[c.item].tags for c in found)


def test_a_request_as_of_a_past_moment_never_gets_items_of_its_future(catalog, index) -> None:
    models = PriorModels(catalog, {"3": 9, "10": 7, "5": 5})
    r = Retriever(RetrieverConfig(explore=ExploreConfig(slots=0),
                                  prior=PriorConfig(freshness=0.0)),
                  dataset=catalog, item_index=index, collaborative=models)  # type: ignore[arg-type]
    first = np.full(catalog.n_items, np.nan)
    first[catalog.item_index["3"]], first[catalog.item_index["10"]] = 500.0, 100.0
    r.first_seen = first  # "3" appeared at 500, "10" at 100, "5" has no timed event
    past, now = r.retrieve_many([profile()] * 2, [[], []], n=5, as_of=[200.0, None])
    assert [c.item for c in past] == ["10", "5"]
    assert [c.item for c in now] == ["3", "10", "5"]


def test_interest_queries_from_evidence_vectors(catalog, index) -> None:
    """interest_query 'evidence': the label is not embedded; the interest asks for the
    centre of its evidence items (item 7 is a robot film: robot films come back)."""
    mislabelled = profile(interests=[("heist", 1.0, ["7", "37"])])
    r = retriever(catalog, index, max_category_queries=0, interest_query="evidence",
                  explore=ExploreConfig(slots=0))
    plan = r.planner.plan(mislabelled, [], Constraints(), 10)
    assert plan.queries[0].text is None and plan.queries[0].vector_ids == (("7", 1.0),
                                                                           ("37", 1.0))
    found = r.retrieve(mislabelled, [], n=10)
    assert found and all(theme_of(catalog, c.item) == "robot" for c in found)
    by_label = retriever(catalog, index, max_category_queries=0, evidence_titles=0,
                         explore=ExploreConfig(slots=0))
    assert all(theme_of(catalog, c.item) == "heist"
               for c in by_label.retrieve(mislabelled, [], n=10))


def test_popularity_prior_reorders_an_interests_hits(catalog, index) -> None:
    interest = profile(interests=[("heist", 1.0, ["1"])])
    popular = "63"  # a heist film, one of many equally near "heist"
    events = pd.DataFrame({"user": [f"u{k}" for k in range(1000)], "item": popular,
                           "rating": 4.0, "timestamp": 0})
    config = dict(max_category_queries=0, explore=ExploreConfig(slots=0), evidence_titles=0)
    plain = ids(retriever(catalog, index, **config).retrieve(interest, [], n=20))
    r = Retriever(RetrieverConfig(per_query_k=15, popularity_prior=1.0, **config),
                  dataset=catalog, item_index=index, events=events)
    boosted = ids(r.retrieve(interest, [], n=20))
    assert theme_of(catalog, popular) == "heist"
    assert boosted[0] == popular and plain[0] != popular


def test_the_decayed_prior_prefers_what_is_watched_at_the_requests_moment(catalog,
                                                                           index) -> None:
    """"63" was watched by many a year before the request, "64" by a few in its last week:
    all-time counts put "63" first, counts halved per 30 days of age put "64" first."""
    day = 86_400
    rows = [(f"old{k}", "63", 4.0, 0) for k in range(50)]
    rows += [(f"new{k}", "64", 4.0, 360 * day + k) for k in range(5)]
    events = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    interest = profile(interests=[("heist", 1.0, ["1"])])
    config = dict(max_category_queries=0, explore=ExploreConfig(slots=0), evidence_titles=0,
                  per_query_k=15, popularity_prior=1.0)

    def first(moment: float | None, half_life: float) -> str:
        r = Retriever(RetrieverConfig(popularity_half_life_days=half_life, **config),
                      dataset=catalog, item_index=index, events=events)
        return r.retrieve_many([interest], [[]], n=20, moments=[moment])[0][0].item

    assert first(365.0 * day, 30.0) == "64"
    assert first(365.0 * day, 0.0) == "63"  # off: all-time counts
    assert first(None, 30.0) == "63"  # no moment (an untimed request): all-time counts
    assert first(10.0 * day, 30.0) == "63"  # before "64" was watched by anybody


def test_rising_interests_are_asked_harder(catalog, index) -> None:
    rising = InterestProfile(
        user="u1", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), history_hash="h",
        n_items=3, interests=[
            Interest(label="heist", granularity="keyword", weight=1.0, trend=0.2),
            Interest(label="robot", granularity="keyword", weight=1.0, trend=-0.2)])
    plain = retriever(catalog, index).planner.plan(rising, [], Constraints(), 10)
    tilted = retriever(catalog, index, interest_trend_gain=2.0).planner.plan(
        rising, [], Constraints(), 10)
    assert [q.weight for q in plain.queries[:2]] == [1.0, 1.0]
    assert [round(q.weight, 3) for q in tilted.queries[:2]] == [1.4, 0.6]
