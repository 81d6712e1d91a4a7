"""A small movie catalog and a stand-in pipeline for the chat tests (loaded by path from the
other chat test files), plus tests that the stand-in honours constraints: the chat tests'
assertions are only as good as this stand-in's filtering.

The stand-in has :meth:`RecommendPipeline.recommend`'s signature and applies the same hard
constraints (categories, years, excluded and seen items); it scores by category overlap with
the seeds, the profile's categories and word overlap with the queries, and explains each item
with the history items that share a category with it (evidence only from the history).
"""

from __future__ import annotations

import pandas as pd

from tastelens.agent.recommendation import (
    Constraints,
    Explanation,
    Recommendation,
    RecommendationList,
)
from tastelens.data.dataset import Dataset
from tastelens.schemas import InterestProfile, Item

MOVIES = [
    ("Heat (1995)", "Action|Crime|Thriller"), ("Ronin (1998)", "Action|Crime|Thriller"),
    ("Point Break (1991)", "Action|Crime|Thriller"), ("Rush Hour (1998)", "Action|Comedy|Crime"),
    ("Beverly Hills Cop (1984)", "Action|Comedy|Crime"),
    ("Other Guys, The (2010)", "Action|Comedy|Crime"), ("Hot Fuzz (2007)", "Action|Comedy|Crime"),
    ("21 Jump Street (2012)", "Action|Comedy|Crime"),
    ("Lethal Weapon (1987)", "Action|Comedy|Crime|Drama"),
    ("Scream (1996)", "Comedy|Horror|Mystery"), ("Shaun of the Dead (2004)", "Comedy|Horror"),
    ("Zombieland (2009)", "Action|Comedy|Horror"), ("Tucker and Dale vs Evil (2010)",
                                                    "Comedy|Horror"),
    ("Halloween (1978)", "Horror"), ("Shining, The (1980)", "Horror"),
    ("Get Out (2017)", "Horror|Mystery"), ("Airplane! (1980)", "Comedy"),
    ("Groundhog Day (1993)", "Comedy|Fantasy|Romance"), ("Superbad (2007)", "Comedy"),
    ("Bridesmaids (2011)", "Comedy"),
    ("Toy Story (1995)", "Adventure|Animation|Children|Comedy|Fantasy"),
    ("Lion King, The (1994)", "Animation|Children|Drama|Musical"),
    ("Aladdin (1992)", "Animation|Children|Comedy|Musical"),
    ("Beauty and the Beast (1991)", "Animation|Children|Musical|Romance"),
    ("Little Mermaid, The (1989)", "Animation|Children|Comedy|Musical|Romance"),
    ("Frozen (2013)", "Animation|Children|Fantasy|Musical"), ("Titanic (1997)", "Drama|Romance"),
    ("Godfather, The (1972)", "Crime|Drama"), ("Inception (2010)", "Action|Sci-Fi|Thriller"),
    ("Deadpool (2016)", "Action|Comedy|Sci-Fi"), ("Baby Driver (2017)", "Action|Comedy|Crime"),
    ("Hercules (1997)", "Animation|Children|Comedy|Musical"),
]
# user -> [(title prefix, rating)]
HISTORIES = {
    "1": [("Ronin", 5.0), ("Point Break", 4.5), ("Godfather", 5.0), ("Titanic", 2.0)],
    "2": [("Airplane", 5.0), ("Superbad", 4.0), ("Halloween", 1.0)],
    "3": [("Aladdin", 5.0), ("Lion King", 4.5)],
}


# Descriptors (keywords) of some of the movies: the words the chat may read as wishes.
KEYWORDS = {
    "Heat": ("heist", "bank robbery", "twist ending"), "Point Break": ("heist", "surfing"),
    "Ronin": ("car chase", "twist ending"), "Baby Driver": ("car chase", "heist"),
    "Zombieland": ("zombie",), "Shaun of the Dead": ("zombie", "pub"),
    "Get Out": ("twist ending",), "Titanic": ("shipwreck", "tearjerker"),
    **{t: ("disney", "princess") for t in ("Little Mermaid", "Beauty and the Beast",
                                           "Aladdin")},
    **{t: ("disney",) for t in ("Lion King", "Hercules", "Frozen", "Toy Story")},
}


def make_movie_dataset() -> Dataset:
    items = {}
    for i, (title, genres) in enumerate(MOVIES, 1):
        name = title.split(" (")[0]
        words = next((k for p, k in KEYWORDS.items() if name.startswith(p)), ())
        items[str(i)] = Item(id=str(i), title=title, year=int(title[-5:-1]),
                             categories=tuple(genres.split("|")),
                             tags=(name.lower(),), keywords=words)
    by_prefix = {it.title: it.id for it in items.values()}
    rows = []
    for user, events in HISTORIES.items():
        for t, (prefix, rating) in enumerate(events):
            item = next(i for title, i in by_prefix.items() if title.startswith(prefix))
            rows.append((user, item, rating, 1_000_000 + t))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return Dataset(name="movies", items=items,
                   interactions=frame.astype({"rating": "float64", "timestamp": "int64"}))


class StandInPipeline:
    """Deterministic stand-in for RecommendPipeline (see the module docstring)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.calls: list[dict] = []

    def allowed(self, item: Item, c: Constraints, seen: set[str]) -> bool:
        cats = set(item.categories)
        return (item.id not in seen and item.id not in c.exclude_items
                and item.id not in c.seed_items
                and (not c.include_categories or bool(cats & set(c.include_categories)))
                and not cats & set(c.exclude_categories)
                and (c.year_min is None or (item.year or 0) >= c.year_min)
                and (c.year_max is None or (item.year or 9999) <= c.year_max))

    def recommend(self, user: str | None, *, k: int | None = None,
                  constraints: Constraints | None = None, profile: InterestProfile | None = None,
                  history: list[str] | None = None) -> RecommendationList:
        c = constraints or Constraints()
        self.calls.append({"user": user, "k": k, "constraints": c, "profile": profile,
                           "history": history})
        history = ([e.item for e in self.dataset.history(user)] if history is None
                   else list(history))
        liked = [i for i in history]
        seeds = [set(self.dataset.items[s].categories) for s in c.seed_items]
        prof = {p.category for p in profile.categories} if profile else {
            cat for i in liked for cat in self.dataset.items[i].categories}
        words = {w for q in c.queries for w in q.lower().split()}

        def score(item: Item) -> float:
            cats = set(item.categories)
            s = sum(len(cats & sc) / len(cats | sc) for sc in seeds)
            s += 0.5 * len(cats & prof) / max(1, len(cats))
            s += 0.3 * len(words & set(item.title.lower().split()))
            return s

        pool = [it for it in self.dataset.items.values() if self.allowed(it, c, set(history))]
        pool.sort(key=lambda it: (-score(it), int(it.id)))
        out = []
        for rank, it in enumerate(pool[: k or 10], 1):
            evidence = [i for i in liked
                        if set(self.dataset.items[i].categories) & set(it.categories)][:2]
            text = (f"It shares {', '.join(sorted(it.categories))} with what you watched."
                    if evidence else "It fits what you asked for.")
            out.append(Recommendation(item=it.id, title=it.title, rank=rank, score=score(it),
                                      explanation=Explanation(text=text, evidence=evidence)))
        return RecommendationList(user=user, items=out, constraints=c)

    def history_profile(self, history: list[str]) -> InterestProfile:
        from datetime import datetime, timezone

        from tastelens.schemas import CategoryPreference

        cats = [c for i in history for c in self.dataset.items[i].categories]
        shares = {c: cats.count(c) / len(cats) for c in dict.fromkeys(cats)}
        return InterestProfile(
            user="anonymous", dataset=self.dataset.name, created_at=datetime.now(timezone.utc),
            history_hash="", n_items=len(history),
            categories=[CategoryPreference(category=c, weight=w, count=cats.count(c))
                        for c, w in sorted(shares.items(), key=lambda t: -t[1])],
            long_term=shares, recent=shares)


# -- the stand-in itself -------------------------------------------------------------------
def test_stand_in_applies_every_hard_constraint() -> None:
    ds = make_movie_dataset()
    pipe = StandInPipeline(ds)
    c = Constraints(include_categories=["Comedy"], exclude_categories=["Horror"], year_min=2000,
                    exclude_items=["19"])
    result = pipe.recommend("2", k=20, constraints=c)
    assert result.items, "the catalog has post-2000 non-horror comedies"
    seen = {e.item for e in ds.history("2")}
    for rec in result.items:
        item = ds.items[rec.item]
        assert "Comedy" in item.categories and "Horror" not in item.categories
        assert item.year >= 2000 and rec.item not in seen | {"19"}


def test_stand_in_ranks_by_seed_and_explains_from_history_only() -> None:
    ds = make_movie_dataset()
    result = StandInPipeline(ds).recommend("2", k=6, constraints=Constraints(seed_items=["1"]))
    assert ds.items[result.items[0].item].categories == ("Action", "Crime", "Thriller")
    history = {e.item for e in ds.history("2")}
    assert all(set(r.evidence) <= history for r in result.items)
    assert any(r.evidence for r in result.items)


# -- the real pipeline, recorded -------------------------------------------------------------
class PriorOnly:
    """The collaborative models' popularity prior alone (no sequence or item-item model):
    what a new visitor's first picks come from."""

    def __init__(self, dataset: Dataset) -> None:
        from tastelens.data.dataset import user_sequences
        from tastelens.vectorstore.popularity import PopularityPrior

        sequences = list(user_sequences(dataset.interactions, dataset).values())
        self.prior = PopularityPrior.fit(sequences, dataset)
        self.ease = None


class RecordedPipeline:
    """The real :class:`RecommendPipeline` (retriever over a HashingEncoder Chroma index, data
    profiles; no LLM re-ranking unless ``llm`` and ``rerank`` say so) with the same ``calls``
    record as the stand-in, so every chat test also runs against the real part."""

    def __init__(self, dataset: Dataset, root, llm=None,  # noqa: ANN001 - tmp Path, backend
                 rerank: str = "none") -> None:
        from tastelens.agent.explain import Explainer
        from tastelens.agent.pipeline import RecommendPipeline
        from tastelens.agent.profile.profiler import Profiler
        from tastelens.agent.rank.reranker import Reranker
        from tastelens.agent.retrieve.retriever import Retriever
        from tastelens.config.pipeline import PipelineConfig
        from tastelens.config.settings import (
            ChromaSettings,
            EmbedderSettings,
            LLMSettings,
            Settings,
        )
        from tastelens.llm.fake import FakeBackend
        from tastelens.vectorstore.encoders import HashingEncoder
        from tastelens.vectorstore.item_index import ItemIndex

        settings = Settings(cache_dir=root, chroma=ChromaSettings(mode="embedded"),
                            embedder=EmbedderSettings(model="hashing"),
                            llm=LLMSettings(backend="fake"))
        index = ItemIndex.for_dataset(settings, dataset.name, HashingEncoder())
        index.build(dataset.items.values(), progress=False)
        cfg = PipelineConfig.model_validate({"profile_source": "facts",
                                             "rerank": {"mode": rerank}})
        llm = llm or FakeBackend(responder=lambda request: "{}")
        self.pipeline = RecommendPipeline(
            cfg, dataset=dataset, profiler=Profiler(llm), llm=llm,
            retriever=Retriever(cfg.retriever, dataset=dataset, item_index=index,
                                collaborative=PriorOnly(dataset)),  # type: ignore[arg-type]
            reranker=Reranker(cfg.rerank, llm=llm, dataset=dataset),
            explainer=Explainer(cfg.explain, llm=llm, dataset=dataset, item_index=index))
        self.dataset = dataset
        self.calls: list[dict] = []

    def recommend(self, user: str | None, *, k: int | None = None,
                  constraints: Constraints | None = None, profile: InterestProfile | None = None,
                  history: list[str] | None = None) -> RecommendationList:
        self.calls.append({"user": user, "k": k, "constraints": constraints or Constraints(),
                           "profile": profile, "history": history})
        return self.pipeline.recommend(user, k=k, constraints=constraints, profile=profile,
                                       history=history)

    def history_profile(self, history: list[str]) -> InterestProfile:
        return self.pipeline.history_profile(history)


def test_real_pipeline_applies_every_hard_constraint(tmp_path) -> None:  # noqa: ANN001
    ds = make_movie_dataset()
    c = Constraints(include_categories=["Comedy"], exclude_categories=["Horror"], year_min=2000,
                    exclude_items=["19"])
    result = RecordedPipeline(ds, tmp_path).recommend("2", k=20, constraints=c)
    assert result.items
    seen = {e.item for e in ds.history("2")}
    for rec in result.items:
        item = ds.items[rec.item]
        assert "Comedy" in item.categories and "Horror" not in item.categories
        assert item.year >= 2000 and rec.item not in seen | {"19"}
        assert set(rec.explanation.evidence) <= seen
