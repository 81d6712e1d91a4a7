"""Fixtures shared by every test package.

- ``real_data_path``: the real MovieLens ml-latest-small folder from TASTELENS_TEST_DATA
  (``.ci/run`` and ``make test`` set it); tests that need it skip with the reason otherwise.
- ``tiny_dataset``: a small synthetic catalog + interactions built in code (read-only).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastelens.data.dataset import Dataset
from tastelens.schemas import Item

GENRES = ("Action", "Comedy", "Drama", "Horror", "Animation", "Romance")


@pytest.fixture(scope="session")
def real_data_path() -> Path:
    value = os.environ.get("TASTELENS_TEST_DATA")
    if not value:
        pytest.skip("TASTELENS_TEST_DATA is not set: point it at a MovieLens ml-latest-small "
                    "folder (make test and .ci/run set it to ../shared/data/ml-latest-small)")
    path = Path(value)
    if not (path / "ratings.csv").is_file():
        pytest.skip(f"TASTELENS_TEST_DATA={value} holds no ratings.csv")
    return path


def make_tiny_dataset(n_users: int = 30, n_items: int = 40, per_user: int = 12,
                      seed: int = 0) -> Dataset:
    """Users prefer one genre each, so a sensible recommender beats random on it."""
    rng = np.random.default_rng(seed)
    items = {}
    for i in range(n_items):
        genre = GENRES[i % len(GENRES)]
        items[str(i + 1)] = Item(id=str(i + 1), title=f"{genre} Movie {i + 1} ({1980 + i})",
                                 year=1980 + i, categories=(genre,), tags=(genre.lower(),))
    by_genre = {g: [k for k, it in items.items() if it.categories[0] == g] for g in GENRES}
    rows = []
    for u in range(n_users):
        liked = GENRES[u % len(GENRES)]
        pool = by_genre[liked] * 1 + list(rng.choice(list(items), size=4, replace=False))
        chosen = list(dict.fromkeys(rng.permutation(pool)))[:per_user]
        for t, item in enumerate(chosen):
            rating = 4.5 if items[item].categories[0] == liked else 2.0
            rows.append((str(u + 1), item, rating, 1_000_000 + 1000 * u + t))
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    frame = frame.astype({"rating": "float64", "timestamp": "int64"})
    return Dataset(name="tiny", items=items, interactions=frame)


@pytest.fixture(scope="session")
def tiny_dataset() -> Dataset:
    dataset = make_tiny_dataset()
    snapshot = dataset.interactions.copy()
    yield dataset
    # Data fixtures are read-only: fail loudly if a test mutated the shared one.
    pd.testing.assert_frame_equal(dataset.interactions, snapshot)
