"""Loaders for the three MovieLens layouts GroupLens publishes.

- **csv** (ml-latest-small, ml-latest, ml-20m/25m/32m): ``movies.csv`` (movieId, title,
  genres), ``ratings.csv`` (userId, movieId, rating, timestamp), optional ``tags.csv``
  (userId, movieId, tag, timestamp); UTF-8 with quoted titles. ``links.csv`` (movieId, imdbId,
  tmdbId) joins a side-information file (:mod:`tastelens.data.side_info`).
- **100k** (ml-100k): ``u.data`` (tab-separated user, item, rating, timestamp, no header),
  ``u.item`` (pipe-separated, latin-1: id, title, release date, video date, IMDb URL and
  19 genre flags), ``u.genre`` (genre names in flag order; the standard list if absent).
- **1m** (ml-1m, ml-10m): ``ratings.dat`` and ``movies.dat`` with ``::`` separators, latin-1.

Ids become strings ("296"); ratings must lie in [0.5, 5]. The year is parsed out of the
title ("Heat (1995)" -> 1995) and the title kept as is; genres become ``Item.categories``
("(no genres listed)" and 100k's "unknown" become none); tags are aggregated per movie,
case-insensitively, most frequent first (ties: first seen in the file), and kept as dated
events too (``Dataset.tag_events``) so an evaluation sees only those before its cut.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from tastelens.data.dataset import Dataset
from tastelens.data.tags import aggregate
from tastelens.data.parsing import (
    Table,
    check_unique,
    finish,
    floats,
    ids_to_str,
    int_ids,
    ints,
    lookup,
    make_items,
    read_numeric,
    read_table,
    title_year,
)
from tastelens.errors import DataFormatError
from tastelens.schemas import Item

NO_GENRES = frozenset({"(no genres listed)", "unknown", ""})
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western")
_RATING_RANGE = {"low": 0.5, "high": 5.0}


def _interactions(table: Table, user: str, item: str, rating: str, ts: str) -> pd.DataFrame:
    return pd.DataFrame({
        "user": int_ids(table, user),
        "item": int_ids(table, item),
        "rating": floats(table, rating, **_RATING_RANGE),
        "timestamp": ints(table, ts, what="Unix seconds (an integer)", minimum=0),
    })


def _ratings(path: Path, *, sep: str, header: bool, expect: str,
             encoding: str = "utf-8") -> pd.DataFrame:
    """user, item, rating, timestamp from an all-numeric ratings file.

    Fast path first (typed C parsing, vectorised range checks); if anything is off, the
    string-based path re-reads the file to name the first bad line and field.
    """
    names = ("userId", "movieId", "rating", "timestamp") if header else (
        "user", "item", "rating", "timestamp")
    if sep == "::":  # all-numeric, so ':' works with the C parser: fields 0, 2, 4, 6
        fast = read_numeric(path, sep=":", names=[f"f{i}" for i in range(7)],
                            columns=["f0", "f2", "f4", "f6"], ints=["f0", "f2", "f6"],
                            floats=["f4"], encoding=encoding)
        if fast is not None:
            fast.columns = list(names)
    else:
        fast = read_numeric(path, sep=sep, names=None if header else list(names),
                            columns=list(names), ints=[names[0], names[1], names[3]],
                            floats=[names[2]], encoding=encoding)
    if fast is not None:
        rating = fast[names[2]].to_numpy(np.float64)
        ids = fast[[names[0], names[1]]].to_numpy()
        ts = fast[names[3]].to_numpy(np.int64)
        if ((rating >= _RATING_RANGE["low"]) & (rating <= _RATING_RANGE["high"])).all() \
                and (ids >= 0).all() and (ts >= 0).all():
            return pd.DataFrame({"user": ids_to_str(ids[:, 0]), "item": ids_to_str(ids[:, 1]),
                                 "rating": rating, "timestamp": ts})
    table = read_table(path, sep=sep, columns=None if header else names,
                       required=names if header else (), encoding=encoding,
                       quoting=csv.QUOTE_MINIMAL if header else csv.QUOTE_NONE, expect=expect)
    return _interactions(table, *names)


def _catalog(table: Table, ids: pd.Series, titles: pd.Series,
             genres: list[tuple[str, ...]], tags: dict[str, tuple[str, ...]],
             fallback_years: pd.Series | None = None) -> dict[str, Item]:
    check_unique(table.path, ids.rename("movieId"), table.lines)
    # Plain lists: iterating arrow-backed Series element by element is slow.
    ids, titles = ids.tolist(), titles.str.strip().tolist()
    years = [title_year(t) for t in titles]
    if fallback_years is not None:
        years = [y if y is not None else (None if pd.isna(f) else int(f))
                 for y, f in zip(years, fallback_years.tolist())]
    records = ({"id": i, "title": t, "year": y, "categories": g, "tags": tags.get(i, ())}
               for i, t, y, g in zip(ids, titles, years, genres))
    return make_items(table.path, table.lines, records)


def _split_genres(values: pd.Series) -> list[tuple[str, ...]]:
    return [tuple(g for g in v.split("|") if g.strip() not in NO_GENRES) for v in values.tolist()]


def tag_events(table: Table, known: set[str] | None = None) -> tuple[pd.DataFrame, dict]:
    """tags.csv as dated events (user, item, tag, timestamp) in file order, blank tags and
    tags on unknown movies dropped (and counted). ``userId`` and ``timestamp`` are optional
    columns (blank user, timestamp -1 when absent)."""
    n = len(table)
    frame = pd.DataFrame({
        "user": (int_ids(table, "userId") if "userId" in table.frame
                 else pd.Series([""] * n, dtype=str)),
        "item": int_ids(table, "movieId"),
        "tag": table.frame["tag"].str.strip().reset_index(drop=True),
        "timestamp": (ints(table, "timestamp", what="Unix seconds (an integer)", minimum=0,
                           optional=True) if "timestamp" in table.frame
                      else np.full(n, -1, dtype=np.int64)),
    })
    frame = frame[frame["tag"] != ""]
    stats = {"tag_rows": len(frame)}
    if known is not None:
        unknown = lookup(list(known), frame["item"]) < 0
        if unknown.any():
            stats["tag_rows_unknown_item"] = int(unknown.sum())
            frame = frame[~unknown]
    return frame.reset_index(drop=True), stats


def load_movielens_csv(folder: Path) -> Dataset:
    """ml-latest-small and the other CSV releases."""
    movies = read_table(folder / "movies.csv", required=("movieId", "title", "genres"),
                        expect="a header 'movieId,title,genres' and one movie per line")
    report: dict[str, object] = {"format": "movielens-csv",
                                 "files": ["movies.csv", "ratings.csv"]}
    ids = int_ids(movies, "movieId")
    tags: dict[str, tuple[str, ...]] = {}
    events = None
    tags_path = folder / "tags.csv"
    if tags_path.is_file() and tags_path.stat().st_size > 0:
        tag_table = _read_optional(tags_path, ("movieId", "tag"))
        if tag_table is not None:
            events, stats = tag_events(tag_table, set(ids))
            tags = aggregate(events)
            report["tags"] = {**stats, "items_with_tags": len(tags)}
            report["files"].append("tags.csv")
    items = _catalog(movies, ids, movies.frame["title"], _split_genres(movies.frame["genres"]),
                     tags)
    frame = _ratings(folder / "ratings.csv", sep=",", header=True,
                     expect="a header 'userId,movieId,rating,timestamp' and rating rows")
    dataset = finish(folder.name, folder, items, frame, folder / "ratings.csv", report)
    return dataclasses.replace(dataset, tag_events=events) if events is not None else dataset


def _read_optional(path: Path, required: tuple[str, ...]) -> Table | None:
    """tags.csv with a header and no rows just means 'no tags'."""
    try:
        return read_table(path, required=required)
    except DataFormatError as exc:
        if exc.line is None and "no data rows" in str(exc):
            return None
        raise


def load_ml100k(folder: Path) -> Dataset:
    """ml-100k: u.data + u.item (+ u.genre)."""
    genres = ML100K_GENRES
    genre_path = folder / "u.genre"
    if genre_path.is_file():
        table = read_table(genre_path, sep="|", columns=("name", "index"), encoding="latin-1",
                           quoting=csv.QUOTE_NONE, expect="lines 'genre|index'")
        order = ints(table, "index", what="a genre index", minimum=0)
        genres = tuple(table.frame["name"].str.strip().to_numpy()[np.argsort(order)])
    flag_names = tuple(f"g{i}" for i in range(len(genres)))
    columns = ("id", "title", "release", "video", "url") + flag_names
    movies = read_table(folder / "u.item", sep="|", columns=columns, encoding="latin-1",
                        quoting=csv.QUOTE_NONE,
                        expect=f"lines 'id|title|release date|video date|url' + {len(genres)} "
                               "genre flags")
    flag_cols = list(columns[5:])
    flags = movies.frame[flag_cols].apply(lambda c: c.str.strip())
    bad = ~flags.isin(["0", "1"]).to_numpy()
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise movies.fail(int(row), f"genre flag {col + 1} ({genres[col]})",
                          f"expected 0 or 1, got {flags.iat[row, col]!r}")
    on = (flags == "1").to_numpy()
    names = np.array(genres, dtype=object)
    genre_lists = [tuple(g for g in names[mask] if g not in NO_GENRES) for mask in on]
    release_years = pd.to_datetime(movies.frame["release"].str.strip(), format="%d-%b-%Y",
                                   errors="coerce").dt.year
    items = _catalog(movies, int_ids(movies, "id"), movies.frame["title"], genre_lists, {},
                     fallback_years=release_years)
    frame = _ratings(folder / "u.data", sep="\t", header=False,
                     expect="tab-separated lines 'user item rating timestamp'")
    report: dict[str, object] = {"format": "movielens-100k",
                                 "files": ["u.data", "u.item"] + (["u.genre"] if
                                                                  genre_path.is_file() else [])}
    return finish(folder.name, folder, items, frame, folder / "u.data", report)


def load_ml1m(folder: Path) -> Dataset:
    """ml-1m (and ml-10m): ratings.dat + movies.dat with '::' separators."""
    movies = read_table(folder / "movies.dat", sep="::", columns=("id", "title", "genres"),
                        encoding="latin-1", quoting=csv.QUOTE_NONE,
                        expect="lines 'MovieID::Title::Genres'")
    items = _catalog(movies, int_ids(movies, "id"), movies.frame["title"],
                     _split_genres(movies.frame["genres"]), {})
    frame = _ratings(folder / "ratings.dat", sep="::", header=False, encoding="latin-1",
                     expect="lines 'UserID::MovieID::Rating::Timestamp'")
    report: dict[str, object] = {"format": "movielens-1m", "files": ["movies.dat", "ratings.dat"]}
    return finish(folder.name, folder, items, frame, folder / "ratings.dat", report)
