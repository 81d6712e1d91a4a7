"""Find out what kind of dataset a folder holds, load it, and decide which folder to use."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tastelens.data.dataset import Dataset
from tastelens.data.generic import INTERACTION_FILES, ITEMS_FILE, is_generic, load_generic
from tastelens.data.movielens import load_ml1m, load_ml100k, load_movielens_csv
from tastelens.errors import DatasetNotFoundError

if TYPE_CHECKING:  # settings pull in pydantic-settings; only the type is needed here
    from tastelens.config.settings import Settings

log = logging.getLogger("tastelens.data")


@dataclass(frozen=True)
class DataFormat:
    """One folder layout: how to recognise it and how to load it."""

    name: str
    expects: str
    """Human-readable list of the files this format needs (used in error messages)."""
    detect: Callable[[Path], bool]
    load: Callable[[Path], Dataset]


def _has(*names: str) -> Callable[[Path], bool]:
    return lambda folder: all((folder / name).is_file() for name in names)


# Checked in this order; the first match wins.
FORMATS: tuple[DataFormat, ...] = (
    DataFormat("movielens-csv", "MovieLens CSV (ml-latest-small, ml-latest, ml-25m): "
               "movies.csv + ratings.csv, optionally tags.csv",
               _has("movies.csv", "ratings.csv"), load_movielens_csv),
    DataFormat("movielens-100k", "MovieLens 100K (ml-100k): u.data + u.item, optionally u.genre",
               _has("u.data", "u.item"), load_ml100k),
    DataFormat("movielens-1m", "MovieLens 1M (ml-1m): ratings.dat + movies.dat",
               _has("ratings.dat", "movies.dat"), load_ml1m),
    DataFormat("generic", f"generic: {ITEMS_FILE} + {' or '.join(INTERACTION_FILES)} "
               "(format described in tastelens.data.generic)", is_generic, load_generic),
)


def detect_format(folder: Path) -> DataFormat | None:
    """The first format whose files are all in ``folder``, or None."""
    return next((fmt for fmt in FORMATS if fmt.detect(folder)), None)


def locate_dataset(path: Path) -> tuple[Path, DataFormat]:
    """The dataset folder and its format; also looks one level down (an unpacked zip).

    Raises DatasetNotFoundError saying which files each format expects.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"dataset path {path} does not exist; pass --data with a "
                                   "dataset folder, or run `tastelens data fetch movielens-small`")
    if not path.is_dir():
        raise DatasetNotFoundError(f"dataset path {path} is a file; pass the folder that "
                                   "holds it")
    fmt = detect_format(path)
    if fmt is not None:
        return path, fmt
    nested = [(sub, f) for sub in sorted(p for p in path.iterdir() if p.is_dir())
              if (f := detect_format(sub)) is not None]
    if len(nested) == 1:
        return nested[0]
    found = sorted(p.name for p in path.iterdir())
    shown = ", ".join(found[:12]) + (f" (+{len(found) - 12} more)" if len(found) > 12 else "")
    expected = "\n".join(f"  - {fmt.expects}" for fmt in FORMATS)
    reason = (f"several sub-folders hold datasets ({', '.join(p.name for p, _ in nested)}); "
              "pass one of them" if nested else "no known dataset layout")
    raise DatasetNotFoundError(
        f"{path}: {reason}. Found: {shown or 'nothing'}. Expected one of:\n{expected}")


def load_dataset(path: Path, *, side_info: Path | None = None) -> Dataset:
    """Load the dataset in ``path`` (MovieLens small/100k/1m or generic), auto-detected, and
    join the optional side-information file onto its items
    (:func:`tastelens.data.side_info.apply_side_info`)."""
    folder, fmt = locate_dataset(path)
    start = time.perf_counter()
    dataset = fmt.load(folder)
    if side_info is not None:
        from tastelens.data.side_info import apply_side_info

        dataset = apply_side_info(dataset, Path(side_info))
    dataset.report["load_seconds"] = round(time.perf_counter() - start, 3)
    log.info("loaded %s (%s): %d users, %d items, %d interactions in %.2fs", folder, fmt.name,
             dataset.report["users"], dataset.n_items, len(dataset.interactions),
             dataset.report["load_seconds"])
    return dataset


def describe(dataset: Dataset) -> dict[str, object]:
    """Summary figures for `tastelens data info` (JSON-serialisable)."""
    frame = dataset.interactions
    users, n = frame["user"].nunique(), len(frame)
    ratings = frame["rating"].to_numpy(np.float64)
    rated = ratings[~np.isnan(ratings)]
    stamps = frame["timestamp"].to_numpy(np.int64)
    stamps = stamps[stamps >= 0]
    per_user = frame.groupby("user", sort=False).size().to_numpy()

    def day(seconds: int) -> str:
        return datetime.fromtimestamp(int(seconds), tz=timezone.utc).date().isoformat()

    return {
        "name": dataset.name, "source": str(dataset.source) if dataset.source else None,
        "descriptors": descriptor_coverage(dataset),
        "format": dataset.report.get("format"), "users": int(users), "items": dataset.n_items,
        "items_with_interactions": int(frame["item"].nunique()), "interactions": n,
        "density": n / (users * dataset.n_items) if users and dataset.n_items else 0.0,
        "interactions_per_user": {"min": int(per_user.min()), "median": float(np.median(per_user)),
                                  "max": int(per_user.max())},
        "rated_interactions": int(rated.size),
        "rating_range": [float(rated.min()), float(rated.max())] if rated.size else None,
        "rating_mean": float(rated.mean()) if rated.size else None,
        "time_range": [day(stamps.min()), day(stamps.max())] if stamps.size else None,
        "report": dataset.report,
    }


def descriptor_coverage(dataset: Dataset) -> dict[str, object]:
    """Share of items, and of interactions, on items with at least one descriptor
    (:mod:`tastelens.data.descriptors`), and the number of distinct descriptors."""
    index = dataset.descriptor_index
    frame = dataset.interactions
    on = frame["item"].isin(index.by_item.keys()).to_numpy() if len(frame) else np.zeros(0)
    return {"distinct": len(index), "items": index.items_with_descriptors,
            "items_share": round(index.items_with_descriptors / dataset.n_items, 4)
            if dataset.n_items else 0.0,
            "interactions_share": round(float(on.mean()), 4) if len(on) else 0.0,
            "median_per_item": float(np.median([len(d) for d in index.by_item.values()]))
            if index.by_item else 0.0}


def load_for_settings(settings: Settings, data: Path | None = None, *,
                      side_info: Path | None = None, progress: bool = True) -> Dataset:
    """The dataset a command works on: :func:`resolve_data_path`, then :func:`load_dataset`
    with ``side_info`` (explicit) > ``settings.side_info``."""
    return load_dataset(resolve_data_path(settings, data, progress=progress),
                        side_info=side_info if side_info is not None else settings.side_info)


def default_data_path(settings: Settings) -> Path:
    """Where the cached ml-latest-small download lives (whether or not it exists yet)."""
    from tastelens.data.download import dataset_dir

    return dataset_dir("movielens-small", settings.cache_dir)


def resolve_data_path(settings: Settings, data: Path | None = None, *,
                      progress: bool = True) -> Path:
    """Explicit ``data`` > ``settings.data`` > the cached ml-latest-small (fetched if missing)."""
    if data is not None:
        return Path(data).expanduser()
    if settings.data is not None:
        return Path(settings.data).expanduser()
    from tastelens.data.download import fetch_dataset

    return fetch_dataset("movielens-small", settings.cache_dir, progress=progress)
