"""Fixtures for the explainer tests.

- ``movies``: a small catalog of real MovieLens titles, genres and years (the issue's two
  false explanations — "Nine Months (1995)" as "1990s Drama", "K-9 (1989)" as "1990s
  Thriller" — are reproducible on it), with one user's history (read-only).
- ``movie_index``: the same catalog in a temporary embedded Chroma, HashingEncoder vectors.
- ``movie_profile``: that user's profile as the data facts write it (decade × genre labels).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pandas as pd
import pytest

from tastelens.config.settings import ChromaSettings, EmbedderSettings, LLMSettings, Settings
from tastelens.data.dataset import Dataset
from tastelens.schemas import CategoryPreference, Interest, InterestProfile, Item
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

MOVIES = [  # id, title, year, genres, tags
    ("1", "Nine Months (1995)", 1995, "Comedy|Romance", ()),
    ("2", "K-9 (1989)", 1989, "Action|Comedy|Crime", ()),
    ("3", "Schindler's List (1993)", 1993, "Drama|War", ()),
    ("4", "Rob Roy (1995)", 1995, "Action|Drama|Romance|War", ()),
    ("5", "Heat (1995)", 1995, "Action|Crime|Thriller", ("heist", "Al Pacino")),
    ("6", "Seven (a.k.a. Se7en) (1995)", 1995, "Mystery|Thriller", ("serial killer",)),
    ("7", "Pulp Fiction (1994)", 1994, "Comedy|Crime|Drama|Thriller", ("nonlinear",)),
    ("8", "Sleepless in Seattle (1993)", 1993, "Comedy|Drama|Romance", ()),
    ("9", "French Kiss (1995)", 1995, "Action|Comedy|Romance", ()),
    ("10", "While You Were Sleeping (1995)", 1995, "Comedy|Romance", ()),
    ("11", "Lethal Weapon (1987)", 1987, "Action|Comedy|Crime|Drama", ("buddy cop",)),
    ("12", "Die Hard (1988)", 1988, "Action|Crime|Thriller", ()),
    ("13", "Ocean's Eleven (2001)", 2001, "Crime|Thriller", ("heist",)),
    ("14", "Four Weddings and a Funeral (1994)", 1994, "Comedy|Romance", ()),
    ("15", "Clueless (1995)", 1995, "Comedy|Romance", ("high school",)),
    ("16", "Reservoir Dogs (1992)", 1992, "Crime|Mystery|Thriller", ("heist",)),
]
HISTORY = [("3", 5.0), ("4", 4.5), ("6", 4.0), ("7", 5.0), ("8", 4.0), ("10", 4.5),
           ("11", 4.0), ("12", 2.0), ("14", 4.0), ("15", 4.5), ("16", 3.0)]
"""The user liked Schindler's List … Clueless; Die Hard (2.0) and Reservoir Dogs (3.0 < 3.5,
the default liked_rating) are never "you liked this"."""


@pytest.fixture(scope="session")
def movies() -> Dataset:
    items = {i: Item(id=i, title=t, year=y, categories=tuple(g.split("|")), tags=tags)
             for i, t, y, g, tags in MOVIES}
    rows = [("u", item, rating, 1000 + k) for k, (item, rating) in enumerate(HISTORY)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).astype(
        {"rating": "float64", "timestamp": "int64"})
    dataset = Dataset(name="movies", items=items, interactions=frame)
    snapshot = frame.copy()
    yield dataset
    pd.testing.assert_frame_equal(dataset.interactions, snapshot)  # read-only


@pytest.fixture(scope="module")
def movie_index(movies: Dataset, tmp_path_factory: pytest.TempPathFactory) -> ItemIndex:
    settings = Settings(cache_dir=tmp_path_factory.mktemp("explain"),
                        chroma=ChromaSettings(mode="embedded"),
                        embedder=EmbedderSettings(model="hashing"),
                        llm=LLMSettings(backend="fake"))
    index = ItemIndex.for_dataset(settings, movies.name, HashingEncoder())
    index.build(movies.items.values(), progress=False)
    return index


@pytest.fixture
def movie_profile() -> InterestProfile:
    return InterestProfile(
        user="u", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc), history_hash="x",
        n_items=len(HISTORY),
        interests=[Interest(label="1990s Drama", granularity="topic", weight=1.0,
                            evidence=["3", "4", "7"], source="data"),
                   Interest(label="1990s Thriller", granularity="topic", weight=0.8,
                            evidence=["6", "7"], source="data"),
                   Interest(label="1990s Comedy", granularity="topic", weight=0.6,
                            evidence=["8", "10", "14"], source="data"),
                   Interest(label="heist", granularity="keyword", weight=0.5,
                            evidence=["16"], source="data")],
        categories=[CategoryPreference(category="Drama", weight=0.3, count=5),
                    CategoryPreference(category="Comedy", weight=0.25, count=6),
                    CategoryPreference(category="Romance", weight=0.2, count=5)],
        explore_next=["Musical"])
