"""The generic dataset format: any catalog and any interaction log, no MovieLens needed.

A generic dataset is a folder holding two files:

``interactions.csv`` *or* ``interactions.parquet`` — one event per row:

==============  ========  =============================================================
column          required  meaning
==============  ========  =============================================================
``user``        yes       user id (any string; integers are read as their digits)
``item``        yes       item id, must match an ``id`` in ``items.jsonl``
``rating``      no        explicit rating, any finite number; blank = no rating
``timestamp``   no        Unix seconds (integer >= 0); blank = unknown. In Parquet a
                          datetime column is also accepted (converted to seconds, UTC)
==============  ========  =============================================================

CSV files are UTF-8 with a header line; other columns are ignored (and listed in
``Dataset.report``). Rows whose ``item`` is not in the catalog are dropped and reported.

``items.jsonl`` — one JSON object per line (blank lines are skipped)::

    {"id": "tt0113277", "title": "Heat (1995)", "year": 1995,
     "categories": ["Action", "Crime"], "tags": ["heist"],
     "description": "A group of professional bank robbers ..."}

======================  ========  =====================================================
key                     required  meaning
======================  ========  =====================================================
``id``                  yes       string or integer, unique in the file
``title``               yes       display title
``year``                no        integer; when absent a trailing "(1995)" in the
                                  title is used
``categories``          no        list of strings (``genres`` is accepted too), or
                                  category paths: ``"Electronics > Cameras > Lenses"``
                                  or Amazon-style ``[["Electronics", "Cameras"]]``. A
                                  path's first part is a category, its deeper parts
                                  become keywords
``keywords``            no        list of strings: descriptors ("heist", "for lab use"),
                                  most important first
``tags``                no        list of strings, most important first
``description``,        no        free text; every one present is joined, in this
``overview``, ``plot``,           order, into ``Item.text`` (what the embedder and the
``summary``, ``text``             prompts see besides title, categories and tags)
======================  ========  =====================================================

Other keys are ignored and listed in ``Dataset.report["ignored_item_keys"]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from tastelens.data.dataset import Dataset
from tastelens.data.parsing import (
    Table,
    check_unique,
    finish,
    floats,
    ints,
    make_items,
    read_table,
    str_ids,
    title_year,
)
from tastelens.errors import DataFormatError, DatasetNotFoundError

ITEMS_FILE = "items.jsonl"
INTERACTION_FILES = ("interactions.csv", "interactions.parquet")
TEXT_FIELDS = ("description", "overview", "plot", "summary", "text")
_KNOWN_KEYS = {"id", "title", "year", "categories", "genres", "tags", "keywords", *TEXT_FIELDS}
PATH_SEPARATOR = ">"
_OPTIONAL_COLUMNS = ("rating", "timestamp")


def is_generic(folder: Path) -> bool:
    return (folder / ITEMS_FILE).is_file() and any(
        (folder / name).is_file() for name in INTERACTION_FILES)


def load_generic(folder: Path) -> Dataset:
    """Load ``items.jsonl`` + ``interactions.csv``/``.parquet`` from ``folder``."""
    present = [folder / name for name in INTERACTION_FILES if (folder / name).is_file()]
    if len(present) != 1:
        raise DatasetNotFoundError(
            f"{folder}: expected exactly one of {', '.join(INTERACTION_FILES)}, "
            f"found {len(present)}")
    report: dict[str, object] = {"format": "generic", "files": [ITEMS_FILE, present[0].name]}
    items = _read_items(folder / ITEMS_FILE, report)
    table = _read_parquet(present[0]) if present[0].suffix == ".parquet" else read_table(
        present[0], required=("user", "item"), expect="a header 'user,item[,rating][,timestamp]'")
    extra = [c for c in table.frame.columns if c not in ("user", "item", *_OPTIONAL_COLUMNS)]
    if extra:
        report["ignored_columns"] = extra
    n = len(table)
    frame = pd.DataFrame({
        "user": str_ids(table, "user"),
        "item": str_ids(table, "item"),
        "rating": (floats(table, "rating", optional=True) if "rating" in table.frame
                   else np.full(n, np.nan)),
        "timestamp": (ints(table, "timestamp", what="Unix seconds (an integer)", minimum=0,
                           optional=True) if "timestamp" in table.frame
                      else np.full(n, -1, dtype=np.int64)),
    })
    return finish(folder.name, folder, items, frame, table.path, report)


def _read_items(path: Path, report: dict[str, object]):
    if path.stat().st_size == 0:
        raise DataFormatError(path, "the file is empty; expected one JSON object per line "
                              "with at least 'id' and 'title'")
    records, lines, ignored = [], [], set()
    with path.open(encoding="utf-8") as fh:
        try:
            raw_lines = list(fh)
        except UnicodeDecodeError as exc:
            raise DataFormatError(path, f"the bytes are not valid UTF-8 text ({exc.reason})"
                                  ) from None
    for number, raw in enumerate(raw_lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, f"invalid JSON: {exc.msg} at column {exc.colno}",
                                  line=number) from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, f"expected a JSON object, got {type(obj).__name__}",
                                  line=number)
        records.append(_item_record(path, number, obj))
        lines.append(number)
        ignored.update(obj.keys() - _KNOWN_KEYS)
    if not records:
        raise DataFormatError(path, "no items: every line is blank")
    if ignored:
        report["ignored_item_keys"] = sorted(ignored)
    line_array = np.asarray(lines, dtype=np.int64)
    check_unique(path, pd.Series([r["id"] for r in records], name="id"), line_array)
    return make_items(path, line_array, records)


def _item_record(path: Path, line: int, obj: dict) -> dict:
    for key in ("id", "title"):
        if obj.get(key) in (None, ""):
            raise DataFormatError(path, "missing value; every item needs an id and a title",
                                  line=line, field=key)
    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)):
        raise DataFormatError(path, f"expected a string or integer id, got {raw_id!r}",
                              line=line, field="id")
    if not isinstance(obj["title"], str):
        raise DataFormatError(path, f"expected a string, got {obj['title']!r}", line=line,
                              field="title")
    texts = []
    for key in TEXT_FIELDS:
        value = obj.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise DataFormatError(path, f"expected a string, got {type(value).__name__}",
                                  line=line, field=key)
        if value.strip():
            texts.append(value.strip())
    if "categories" in obj and "genres" in obj:
        raise DataFormatError(path, "give either 'categories' or 'genres', not both",
                              line=line, field="genres")
    key = "categories" if "categories" in obj else "genres"
    categories, path_keywords = category_paths(path, line, key, obj.get(key))
    keywords = _strings(path, line, "keywords", obj.get("keywords"))
    title = obj["title"].strip()
    year = obj.get("year")
    return {"id": str(raw_id).strip(), "title": title,
            "year": year if year is not None else title_year(title),
            "categories": categories, "keywords": tuple(dict.fromkeys(keywords + path_keywords)),
            "tags": obj.get("tags", ()), "text": "\n\n".join(texts) or None}


def _strings(path: Path, line: int, field: str, value: object) -> tuple[str, ...]:
    """A list of strings (None: empty); anything else names the line and field."""
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DataFormatError(path, f"expected a list of strings, got {value!r:.60}",
                              line=line, field=field)
    return tuple(v.strip() for v in value if v.strip())


def category_paths(path: Path, line: int, field: str,
                   value: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(categories, keywords) of a ``categories`` value: plain names stay categories; of a
    path ("a > b > c" or ["a", "b", "c"] inside a list) the first part is a category and the
    deeper parts are keywords."""
    if value is None:
        return (), ()
    entries = [value] if isinstance(value, str) else value
    if not isinstance(entries, list):
        raise DataFormatError(path, f"expected a list of names or of paths, got {value!r:.60}",
                              line=line, field=field)
    categories: dict[str, None] = {}
    keywords: dict[str, None] = {}
    for entry in entries:
        if isinstance(entry, str):
            parts = [p.strip() for p in entry.split(PATH_SEPARATOR)]
        elif isinstance(entry, list) and all(isinstance(p, str) for p in entry):
            parts = [p.strip() for p in entry]
        else:
            raise DataFormatError(path, f"expected a name, an 'a > b' path or a list of "
                                  f"names, got {entry!r:.60}", line=line, field=field)
        parts = [p for p in parts if p]
        if parts:
            categories.setdefault(parts[0], None)
            for part in parts[1:]:
                keywords.setdefault(part, None)
    return tuple(categories), tuple(keywords)


def _read_parquet(path: Path) -> Table:
    """Parquet columns become strings so the CSV checks (and their messages) apply."""
    import pyarrow.parquet as pq

    try:
        names = pq.read_schema(path).names
        wanted = [c for c in ("user", "item", *_OPTIONAL_COLUMNS) if c in names]
        for name in ("user", "item"):
            if name not in names:
                raise DataFormatError(path, f"missing column; the file has {names}, expected "
                                      "'user', 'item' and optionally 'rating', 'timestamp'",
                                      field=name)
        frame = pd.read_parquet(path, columns=wanted)
    except DataFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for a damaged file
        raise DataFormatError(path, f"cannot read the Parquet file: {exc}") from None
    if frame.empty:
        raise DataFormatError(path, "no data rows")
    columns = {}
    for name in frame.columns:
        col = frame[name]
        if pd.api.types.is_datetime64_any_dtype(col):
            naive = col.dt.tz_convert("UTC").dt.tz_localize(None) if col.dt.tz else col
            seconds = pd.Series(pd.NA, index=col.index, dtype="Int64")
            ok = naive.notna()
            seconds[ok] = naive[ok].astype("datetime64[s]").astype("int64")
            col = seconds
        columns[name] = col.astype("string").fillna("").astype(str)
    return Table(path, pd.DataFrame(columns), np.arange(1, len(frame) + 1, dtype=np.int64),
                 by_row=True)
