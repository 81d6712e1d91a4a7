"""Fixtures for the fine-tuning data tests: a tiny catalog rich enough for profile targets
(two genres, tags and a series per item) and a HashingEncoder item index in a temporary
embedded Chroma store."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from tastelens.config.settings import ChromaSettings, Settings
from tastelens.data.dataset import Dataset
from tastelens.vectorstore.chroma_client import open_client
from tastelens.vectorstore.encoders import HashingEncoder
from tastelens.vectorstore.item_index import ItemIndex

from ..conftest import make_tiny_dataset

TAGS = {"Action": ("heist", "Stephen King", "In Netflix queue"),
        "Comedy": ("dark comedy", "quirky"), "Drama": ("time travel", "thought-provoking"),
        "Horror": ("atmospheric", "zombies"), "Animation": ("pixar", "funny"),
        "Romance": ("Paris", "bittersweet")}
SECOND = {"Action": "Thriller", "Comedy": "Romance", "Drama": "Crime", "Horror": "Thriller",
          "Animation": "Children", "Romance": "Drama"}


def make_rich_dataset() -> Dataset:
    """make_tiny_dataset's users and events; items get a second genre, tags, 1990s/2000s
    years and (for every fourth item) a sequel-style title."""
    base = make_tiny_dataset()
    items = {}
    for key, item in base.items.items():
        genre, n = item.categories[0], int(key)
        year = 1990 + n % 20
        title = (f"{genre} Movie {n} ({year})" if n % 4
                 else f"Saga {genre} {n // 4 % 3 + 1} ({year})")
        items[key] = item.model_copy(update={
            "categories": (genre, SECOND[genre]), "year": year, "title": title,
            "tags": TAGS[genre]})
    return replace(base, name="rich", items=items)


@pytest.fixture(scope="session")
def rich_dataset() -> Dataset:
    dataset = make_rich_dataset()
    snapshot = dataset.interactions.copy()
    yield dataset
    pd.testing.assert_frame_equal(dataset.interactions, snapshot)


@pytest.fixture(scope="session")
def chroma_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(cache_dir=tmp_path_factory.mktemp("ft-cache"),
                    chroma=ChromaSettings(mode="embedded"))


@pytest.fixture(scope="session")
def hashing_index(chroma_settings: Settings, rich_dataset: Dataset) -> ItemIndex:
    index = ItemIndex(open_client(chroma_settings), "ft-rich-hashing", HashingEncoder(dim=64))
    index.build(rich_dataset.items.values(), progress=False)
    return index


def held_out_pairs(dataset: Dataset) -> dict[str, set[str]]:
    """Each user's last two events (validation + test), computed here independently of
    the code under test."""
    out = {}
    for user in dataset.user_ids:
        events = dataset.user_events(user)
        if len(events) >= 3:
            out[user] = set(events["item"].iloc[-2:])
    return out


def training_events(dataset: Dataset, user: str) -> list:
    events = dataset.history(user)
    return events[:-2] if len(events) >= 3 else events


def read_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
