"""Side information: keywords and descriptions for a catalog's items, from a file of their own.

Any catalog can be given one (setting ``side_info``, env ``TASTELENS_SIDE_INFO``,
``--side-info PATH``). Its keywords join ``Item.keywords`` (after the catalog's own) and its
description joins ``Item.text``, so both reach the embedded item text, the profile's keyword
interests and the explanations.

Formats, chosen by the file's suffix:

- ``.jsonl``: one object per line, ``{"id": "…", "keywords": ["heist", "bank"],
  "description": "…"}``; ``keywords`` is a list of strings.
- ``.csv`` (``.tsv``: tab-separated): a header line and one row per item; the ``keywords``
  cell is either ``|``-separated (``heist|bank robbery``), a JSON list of strings, or a list
  of ``{'id': …, 'name': …}`` objects written as a Python literal (TMDB's
  ``keywords.csv``). That literal is read by a strict parser of its own (strings, numbers,
  lists, dicts; nothing is evaluated); anything else is an error naming the line.

Columns / keys (at least one of ``keywords`` and ``description``):

==========================  =================================================================
key                         meaning
==========================  =================================================================
``item`` / ``item_id`` /    the catalog's item id
``movieId``
``tmdbId`` / ``tmdb_id``    joined through the dataset folder's ``links.csv`` (MovieLens:
``imdbId`` / ``imdb_id``    movieId, imdbId, tmdbId; a generic catalog may add one with an
                            ``item`` column). IMDb ids match with or without "tt" and zeros.
``id``                      whichever of the three matches most rows (reported)
``keywords``                descriptors, most important first
``description`` /           free text (the first of these present)
``overview`` / ``text``
==========================  =================================================================

Several rows for one item are merged (keywords in order, first description). Rows that
match no item are counted, not errors. ``Dataset.report["side_info"]`` says which file, which
join, and how many items it reached.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import re
from pathlib import Path

from tastelens.data.dataset import Dataset
from tastelens.data.descriptors import normalise
from tastelens.data.literal import parse_literal, unquote
from tastelens.errors import DataFormatError

ITEM_KEYS = ("item", "item_id", "movieId")
LINK_KEYS = {"tmdbId": "tmdbId", "tmdb_id": "tmdbId", "imdbId": "imdbId", "imdb_id": "imdbId"}
TEXT_KEYS = ("description", "overview", "text")
LINKS_FILE = "links.csv"


@dataclasses.dataclass(frozen=True)
class SideRow:
    """One row of a side-information file."""

    line: int
    key: str
    keywords: tuple[str, ...] | str
    """Parsed keywords, or (CSV) the cell as written, parsed by :meth:`keyword_tuple` only
    for rows that reach an item (TMDB's file has 46k rows; a catalog uses a fifth)."""
    description: str | None

    def keyword_tuple(self, path: Path) -> tuple[str, ...]:
        if not isinstance(self.keywords, str):
            return self.keywords
        try:
            return _cell_keywords(self.keywords)
        except ValueError as exc:
            raise DataFormatError(path, str(exc), line=self.line, field="keywords") from None


def keyword_list(value: object) -> tuple[str, ...]:
    """A list of strings, or of objects with a ``name``, as keywords; ValueError otherwise."""
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    out = []
    for entry in value:
        if isinstance(entry, dict):
            entry = entry.get("name")
        if not isinstance(entry, str):
            raise ValueError("expected each keyword to be a string or an object with a "
                             f"string 'name', got {entry!r}")
        if entry.strip():
            out.append(entry.strip())
    return tuple(out)


# TMDB's exact shape, [{'id': 931, 'name': 'jealousy'}, …], read with one regular expression
# (five times faster than the general parser, which reads everything else).
_QUOTED = r"'(?:[^'\\]|\\.)*'" + "|" + r'"(?:[^"\\]|\\.)*"'
_ELEMENT = rf"\{{'id': \d+, 'name': (?:{_QUOTED})\}}"
_ID_NAME_LIST = re.compile(rf"\[(?:{_ELEMENT}(?:, {_ELEMENT})*)?\]")
_ID_NAME = re.compile(rf"'name': ({_QUOTED})")


def _cell_keywords(cell: str) -> tuple[str, ...]:
    cell = cell.strip()
    if not cell:
        return ()
    if _ID_NAME_LIST.fullmatch(cell):
        return keyword_list([unquote(m.group(1)) for m in _ID_NAME.finditer(cell)])
    if cell.startswith("["):
        return keyword_list(parse_literal(cell))
    return tuple(part.strip() for part in cell.split("|") if part.strip())


# --- reading the file -------------------------------------------------------------------------
def _key_column(path: Path, names: list[str], line: int) -> str:
    known = [n for n in names if n in (*ITEM_KEYS, *LINK_KEYS, "id")]
    if len(known) != 1:
        raise DataFormatError(
            path, f"expected exactly one id column among {', '.join((*ITEM_KEYS, *LINK_KEYS))}"
            f" or 'id'; found {known or 'none'} in {names}", line=line)
    return known[0]


def _check_content(path: Path, names: list[str] | set[str], line: int) -> None:
    if "keywords" not in names and not any(k in names for k in TEXT_KEYS):
        raise DataFormatError(path, f"expected a 'keywords' or a description column "
                              f"({', '.join(TEXT_KEYS)}); found {sorted(names)}", line=line,
                              field="keywords")


def read_side_info(path: Path) -> tuple[str, list[SideRow]]:
    """(the id column's name, the rows) of a side-information file."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataFormatError(path, "side-information file not found; pass a .csv, .tsv or "
                              ".jsonl file (setting side_info / --side-info)")
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            return _read_jsonl(path)
        if suffix in (".csv", ".tsv"):
            return _read_csv(path, "\t" if suffix == ".tsv" else ",")
    except UnicodeDecodeError as exc:
        raise DataFormatError(path, f"the bytes are not valid UTF-8 text ({exc.reason})"
                              ) from None
    raise DataFormatError(path, f"unknown side-information format {suffix!r}; expected "
                          ".csv, .tsv or .jsonl")


def _read_csv(path: Path, sep: str) -> tuple[str, list[SideRow]]:
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh, delimiter=sep)
        header = next(reader, None)
        if not header:
            raise DataFormatError(path, "the file is empty; expected a header line")
        names = [h.strip() for h in header]
        key = _key_column(path, names, 1)
        _check_content(path, names, 1)
        col = names.index(key)
        kw = names.index("keywords") if "keywords" in names else None
        text = next((names.index(k) for k in TEXT_KEYS if k in names), None)
        rows: list[SideRow] = []
        for record in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            if len(record) != len(names):
                raise DataFormatError(path, f"{len(record)} fields, the header has "
                                      f"{len(names)}", line=line)
            ident = record[col].strip()
            if not ident:
                raise DataFormatError(path, "missing value; expected an id", line=line,
                                      field=key)
            desc = record[text].strip() if text is not None else ""
            rows.append(SideRow(line, ident, record[kw] if kw is not None else (),
                                desc or None))
    return key, rows


def _read_jsonl(path: Path) -> tuple[str, list[SideRow]]:
    rows: list[SideRow] = []
    key: str | None = None
    with path.open(encoding="utf-8") as fh:
        for line, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise DataFormatError(path, f"invalid JSON: {exc.msg} at column {exc.colno}",
                                      line=line) from None
            if not isinstance(obj, dict):
                raise DataFormatError(path, f"expected a JSON object, got "
                                      f"{type(obj).__name__}", line=line)
            this = _key_column(path, list(obj), line)
            if key is not None and this != key:
                raise DataFormatError(path, f"id key {this!r} differs from the first "
                                      f"line's {key!r}", line=line, field=this)
            key = this
            _check_content(path, set(obj), line)
            ident = obj[key]
            if isinstance(ident, bool) or not isinstance(ident, (str, int)) or \
                    not str(ident).strip():
                raise DataFormatError(path, f"expected a string or integer id, got {ident!r}",
                                      line=line, field=key)
            try:
                keywords = keyword_list(obj["keywords"]) if obj.get("keywords") is not None \
                    else ()
            except ValueError as exc:
                raise DataFormatError(path, str(exc), line=line, field="keywords") from None
            desc = next((obj[k] for k in TEXT_KEYS if obj.get(k) is not None), None)
            if desc is not None and not isinstance(desc, str):
                raise DataFormatError(path, f"expected a string, got {type(desc).__name__}",
                                      line=line, field=next(k for k in TEXT_KEYS if k in obj))
            rows.append(SideRow(line, str(ident).strip(), keywords,
                                desc.strip() if desc and desc.strip() else None))
    if key is None:
        raise DataFormatError(path, "no rows: every line is blank")
    return key, rows


# --- joining it to a catalog --------------------------------------------------------------
def _canonical(value: str, kind: str) -> str:
    """Ids as compared: item ids as they are; link ids without "tt" and leading zeros."""
    value = value.strip()
    if kind == "imdbId" and value[:2].casefold() == "tt":
        value = value[2:]
    if kind != "item" and value.isdigit():
        value = str(int(value))
    return value


def read_links(folder: Path) -> dict[str, dict[str, list[str]]]:
    """``links.csv`` of a dataset folder as {"tmdbId"|"imdbId": {external id: [item ids]}}
    (empty when there is none). Blank external ids are skipped."""
    path = folder / LINKS_FILE
    if not path.is_file():
        return {}
    out: dict[str, dict[str, list[str]]] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        names = [h.strip() for h in next(reader, [])]
        item_col = next((names.index(k) for k in ("movieId", "item", "item_id")
                         if k in names), None)
        if item_col is None:
            raise DataFormatError(path, f"expected an item column (movieId or item) in the "
                                  f"header {names}", line=1)
        cols = {kind: names.index(kind) for kind in ("tmdbId", "imdbId") if kind in names}
        for record in reader:
            if len(record) != len(names):
                if any(cell.strip() for cell in record):
                    raise DataFormatError(path, f"{len(record)} fields, the header has "
                                          f"{len(names)}", line=reader.line_num)
                continue
            item = _canonical(record[item_col], "movieId")
            for kind, col in cols.items():
                ext = _canonical(record[col], kind)
                if ext:
                    out.setdefault(kind, {}).setdefault(ext, []).append(item)
    return out


def _resolve_join(dataset: Dataset, path: Path, key: str, rows: list[SideRow],
                  ) -> tuple[str, dict[str, list[str]], dict[str, int]]:
    """(join kind, external id -> item ids, rows matched per candidate join)."""
    folder = dataset.source if dataset.source is not None and dataset.source.is_dir() else None
    links = read_links(folder) if folder is not None else {}
    options: dict[str, dict[str, list[str]]] = {"item": {i: [i] for i in dataset.items}}
    options.update(links)
    if key in ITEM_KEYS:
        wanted = ["item"]
    elif key in LINK_KEYS:
        wanted = [LINK_KEYS[key]]
        if wanted[0] not in options:
            raise DataFormatError(path, f"joins by {wanted[0]} through {LINKS_FILE}, but "
                                  f"{folder or 'the dataset'} has no {LINKS_FILE} with a "
                                  f"{wanted[0]} column", line=1, field=key)
    else:
        wanted = list(options)
    matched = {kind: sum(1 for r in rows if _canonical(r.key, kind) in options[kind])
               for kind in wanted}
    kind = max(wanted, key=lambda k: matched[k])  # first (item ids) on a tie
    if matched[kind] == 0:
        tried = " or ".join(f"{k} ({LINKS_FILE})" if k != "item" else "an item id"
                            for k in wanted)
        example = rows[0].key if rows else "?"
        raise DataFormatError(path, f"no row's id matches {tried} of dataset "
                              f"{dataset.name!r} (first id {example!r})", field=key)
    return kind, options[kind], matched


def apply_side_info(dataset: Dataset, path: Path) -> Dataset:
    """``dataset`` with the file's keywords and descriptions joined onto its items (the
    module docstring says how); ``report["side_info"]`` says what was joined."""
    path = Path(path).expanduser()
    key, rows = read_side_info(path)
    kind, mapping, matched = _resolve_join(dataset, path, key, rows)
    keywords: dict[str, dict[str, str]] = {}  # item -> normalised -> first spelling
    texts: dict[str, str] = {}
    unmatched = 0
    for row in rows:
        targets = mapping.get(_canonical(row.key, kind))
        if not targets:
            unmatched += 1
            continue
        for item_id in targets:
            if item_id not in dataset.items:
                continue  # links.csv may list movies the catalog does not hold
            bucket = keywords.setdefault(item_id, {})
            for word in row.keyword_tuple(path):
                bucket.setdefault(normalise(word), word)
            if row.description and item_id not in texts:
                texts[item_id] = row.description
    items = dict(dataset.items)
    for item_id in set(keywords) | set(texts):
        item = items[item_id]
        own = {normalise(k) for k in item.keywords}
        extra = tuple(w for n, w in keywords.get(item_id, {}).items() if n and n not in own)
        text = item.text
        if item_id in texts and texts[item_id] != text:
            text = f"{text}\n\n{texts[item_id]}" if text else texts[item_id]
        if extra or text != item.text:
            items[item_id] = item.model_copy(update={"keywords": item.keywords + extra,
                                                     "text": text})
    reached = len(set(keywords) | set(texts))
    report = {**dataset.report, "side_info": {
        "file": str(path), "join": kind if kind == "item" else f"{kind} via {LINKS_FILE}",
        "rows": len(rows), "rows_unmatched": unmatched, "items_reached": reached,
        "items_with_keywords": sum(1 for v in keywords.values() if v),
        "items_share": round(reached / dataset.n_items, 4) if dataset.n_items else 0.0,
        **({"rows_matched_by_join": matched} if len(matched) > 1 else {})}}
    return dataclasses.replace(dataset, items=items, report=report)
