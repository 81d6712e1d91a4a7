"""The in-memory dataset every loader returns and every component reads.

Items are validated pydantic objects; interactions stay columnar (a pandas frame) so that
100k+ events load in well under a second and baselines can build matrices directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from tastelens.data.descriptors import DescriptorIndex
from tastelens.errors import UnknownIdError
from tastelens.schemas import Interaction, Item

INTERACTION_COLUMNS = ("user", "item", "rating", "timestamp")


@dataclass(frozen=True)
class Dataset:
    """A catalog of items plus user-item interactions.

    ``interactions`` has columns ``user`` (str), ``item`` (str), ``rating`` (float, NaN when
    absent) and ``timestamp`` (int64 Unix seconds, or -1 when absent), one row per event,
    every ``item`` present in ``items``. Treat it as read-only: components copy before
    changing anything.
    """

    name: str
    items: dict[str, Item]
    interactions: pd.DataFrame
    source: Path | None = None
    report: dict[str, object] = field(default_factory=dict)
    """What the loader noticed: unknown item ids dropped (count + examples), skipped users…"""
    tag_events: pd.DataFrame | None = None
    """Dated tags when the source has them (MovieLens tags.csv): columns ``user``, ``item``,
    ``tag``, ``timestamp`` (int64, -1 unknown). ``Item.tags`` aggregates all of them; an
    evaluation split keeps only those dated before its cut (:mod:`tastelens.data.tags`)."""

    @cached_property
    def item_ids(self) -> list[str]:
        """Catalog order: the column order of every score matrix."""
        return list(self.items)

    @cached_property
    def item_index(self) -> dict[str, int]:
        return {item_id: i for i, item_id in enumerate(self.item_ids)}

    @cached_property
    def categories(self) -> list[str]:
        """Every category (genre) some item has, sorted."""
        return sorted({c for item in self.items.values() for c in item.categories})

    @cached_property
    def derived(self) -> dict[object, object]:
        """Structures computed once from this (immutable) dataset by other modules, keyed by
        their owner (e.g. the profile miner's catalog statistics); a replaced dataset starts
        empty."""
        return {}

    @cached_property
    def descriptor_index(self) -> DescriptorIndex:
        """Descriptor -> items over this catalog (:mod:`tastelens.data.descriptors`)."""
        return DescriptorIndex.from_items(self.items.values())

    @cached_property
    def rating_range(self) -> tuple[float, float] | None:
        """Lowest and highest rating given (None when nothing is rated): the scale prompts
        name, whatever the catalog's."""
        rated = self.interactions["rating"].dropna()
        return (float(rated.min()), float(rated.max())) if len(rated) else None

    @property
    def n_items(self) -> int:
        return len(self.items)

    @cached_property
    def user_ids(self) -> list[str]:
        return sorted(self.interactions["user"].unique(), key=_natural_key)

    def item(self, item_id: str) -> Item:
        try:
            return self.items[item_id]
        except KeyError:
            raise UnknownIdError(f"item id {item_id!r} is not in dataset {self.name!r}") from None

    def user_events(self, user: str) -> pd.DataFrame:
        """A user's events in chronological order (ties broken by item id)."""
        events = self.interactions[self.interactions["user"] == user]
        if events.empty:
            raise UnknownIdError(f"user id {user!r} has no interactions in dataset {self.name!r}")
        return sort_events(events)

    def history(self, user: str) -> list[Interaction]:
        return [
            Interaction(user=r.user, item=r.item,
                        rating=None if np.isnan(r.rating) else float(r.rating),
                        timestamp=None if r.timestamp < 0 else int(r.timestamp))
            for r in self.user_events(user).itertuples(index=False)
        ]


def sort_events(events: pd.DataFrame) -> pd.DataFrame:
    """Chronological order with a deterministic tie-break: (user, timestamp, item id)."""
    ordered = events.sort_values(["user", "timestamp", "item"], kind="mergesort")
    return ordered.reset_index(drop=True)


def catalog_indices(items: pd.Series, dataset: Dataset) -> np.ndarray:
    """Catalog indices of a column of item ids; an id outside the catalog is an error."""
    codes = items.map(dataset.item_index)
    if codes.isna().any():
        bad = items[codes.isna()].unique()[:5].tolist()
        raise UnknownIdError(
            f"interactions name {int(codes.isna().sum())} item(s) that are not in "
            f"dataset {dataset.name!r}, e.g. {bad}; use events of the same dataset")
    return codes.to_numpy(dtype=np.int64)


def item_counts(events: pd.DataFrame, dataset: Dataset) -> np.ndarray:
    """Events per catalog item (float64, catalog order); ids outside the catalog are not
    counted."""
    found = events["item"].map(dataset.item_index).value_counts()
    counts = np.zeros(dataset.n_items, dtype=np.float64)
    counts[found.index.to_numpy(dtype=np.int64)] = found.to_numpy(dtype=np.float64)
    return counts


def user_sequences(events: pd.DataFrame, dataset: Dataset) -> dict[str, np.ndarray]:
    """Each user's events as catalog indices in chronological order (:func:`sort_events`),
    users in the order they first appear after sorting."""
    ordered = sort_events(events[["user", "item", "timestamp"]])
    if ordered.empty:
        return {}
    ids = catalog_indices(ordered["item"], dataset)
    users = ordered["user"].to_numpy()
    bounds = np.flatnonzero(users[1:] != users[:-1]) + 1
    starts = np.r_[0, bounds]
    return {str(users[s]): part for s, part in zip(starts, np.split(ids, bounds))}


def _natural_key(value: str) -> tuple[int, int | str]:
    return (0, int(value)) if value.isdigit() else (1, value)


@dataclass(frozen=True)
class History:
    """A user's history as catalog indices, chronological; what recommenders score from."""

    user: str
    items: np.ndarray  # int64 catalog indices, oldest first
    ratings: np.ndarray  # float32, NaN when absent
    timestamps: np.ndarray  # int64, -1 when absent

    def __len__(self) -> int:
        return int(self.items.shape[0])
