"""The generic format: interactions CSV/Parquet + items JSONL."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tastelens.data.generic import load_generic
from tastelens.errors import DataFormatError, DatasetNotFoundError


def test_generic_csv_and_jsonl(generic_dir: Path) -> None:
    ds = load_generic(generic_dir)
    assert ds.item_ids == ["tt1", "2", "x3"]
    heat, amelie, untitled = (ds.items[k] for k in ds.item_ids)
    assert heat.year == 1995 and heat.categories == ("Action", "Crime")
    assert heat.text == "Cops and robbers."
    assert amelie.year == 2001 and amelie.categories == ("Comedy",)  # 'genres' alias, blank dropped
    assert amelie.tags == ("paris",) and amelie.text == "A waitress."
    assert untitled.year is None and untitled.text is None
    frame = ds.interactions
    assert frame["user"].tolist() == ["u1", "u1", "u2", "u2"]
    assert frame["item"].tolist() == ["tt1", "2", "x3", "tt1"]
    assert math.isnan(frame["rating"].iloc[1]) and frame["rating"].iloc[0] == 4.5
    assert frame["timestamp"].tolist() == [10, 20, -1, 40]
    assert ds.report["ignored_columns"] == ["source"]
    assert ds.report["ignored_item_keys"] == ["rating_count"]


def test_generic_parquet_without_optional_columns(tmp_path: Path, generic_dir: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    (folder / "items.jsonl").write_text((generic_dir / "items.jsonl").read_text())
    pd.DataFrame({"user": [1, 1, 2], "item": ["tt1", "2", "x3"]}).to_parquet(
        folder / "interactions.parquet")
    ds = load_generic(folder)
    assert ds.interactions["user"].tolist() == ["1", "1", "2"]
    assert ds.interactions["rating"].isna().all()
    assert (ds.interactions["timestamp"] == -1).all()


def test_generic_parquet_datetime_timestamps(tmp_path: Path, generic_dir: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    (folder / "items.jsonl").write_text((generic_dir / "items.jsonl").read_text())
    pd.DataFrame({
        "user": ["a", "a"], "item": ["tt1", "2"], "rating": [1.0, None],
        "timestamp": pd.to_datetime(["1970-01-01 00:01:40", None]),
    }).to_parquet(folder / "interactions.parquet")
    ds = load_generic(folder)
    assert ds.interactions["timestamp"].tolist() == [100, -1]
    ratings = ds.interactions["rating"]
    assert ratings.iloc[0] == 1.0 and math.isnan(ratings.iloc[1])


def test_generic_parquet_bad_value_names_row(tmp_path: Path, generic_dir: Path) -> None:
    folder = tmp_path / "pq"
    folder.mkdir()
    (folder / "items.jsonl").write_text((generic_dir / "items.jsonl").read_text())
    pd.DataFrame({"user": ["a", "a"], "item": ["tt1", "2"], "rating": ["4", "lots"]}).to_parquet(
        folder / "interactions.parquet")
    with pytest.raises(DataFormatError, match=r"field 'rating': row 2: expected a number"):
        load_generic(folder)


@pytest.mark.parametrize("line, text, field, fragment", [
    (2, '{"id": 2, "title": "x"', None, "invalid JSON"),
    (1, '["not", "an", "object"]', None, "expected a JSON object"),
    (4, '{"title": "no id"}', "id", "missing value"),
    (2, '{"id": "b", "title": "x", "categories": 5}', "categories", "expected a list"),
    (2, '{"id": "b", "title": "x", "categories": [["a", 5]]}', "categories", "expected a name"),
    (2, '{"id": "b", "title": "x", "keywords": "heist"}', "keywords", "list of strings"),
    (2, '{"id": "b", "title": "x", "year": "soon"}', "year", "integer"),
    (2, '{"id": "b", "title": "x", "description": 5}', "description", "expected a string"),
    (4, '{"id": "tt1", "title": "again"}', None, "duplicate item id 'tt1': first on line 1"),
])
def test_bad_items_line(generic_dir: Path, line: int, text: str, field: str | None,
                        fragment: str) -> None:
    path = generic_dir / "items.jsonl"
    lines = path.read_text().splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataFormatError) as err:
        load_generic(generic_dir)
    assert (err.value.path.name, err.value.line) == ("items.jsonl", line)
    if field is not None:
        assert err.value.field == field
    assert fragment.lower() in str(err.value).lower()


def test_bad_interaction_row(generic_dir: Path) -> None:
    path = generic_dir / "interactions.csv"
    path.write_text(path.read_text() + "u3,tt1,4,yesterday,web\n")
    with pytest.raises(DataFormatError, match=r"interactions.csv, line 6, field 'timestamp'"):
        load_generic(generic_dir)


def test_missing_user_column(generic_dir: Path) -> None:
    (generic_dir / "interactions.csv").write_text("who,item\nu1,tt1\n")
    with pytest.raises(DataFormatError, match=r"line 1, field 'user': missing column"):
        load_generic(generic_dir)


def test_empty_items_file(generic_dir: Path) -> None:
    (generic_dir / "items.jsonl").write_text("")
    with pytest.raises(DataFormatError, match="items.jsonl: the file is empty"):
        load_generic(generic_dir)


def test_all_interactions_unknown(generic_dir: Path) -> None:
    (generic_dir / "interactions.csv").write_text("user,item\nu1,nope\n")
    with pytest.raises(DataFormatError, match="no interactions left"):
        load_generic(generic_dir)


def test_both_interaction_files_is_ambiguous(generic_dir: Path) -> None:
    pd.DataFrame({"user": ["a"], "item": ["tt1"]}).to_parquet(
        generic_dir / "interactions.parquet")
    with pytest.raises(DatasetNotFoundError, match="exactly one of"):
        load_generic(generic_dir)


def test_generic_keywords_and_category_paths(tmp_path: Path) -> None:
    folder = tmp_path / "shop"
    folder.mkdir()
    (folder / "items.jsonl").write_text(
        '{"id": "p1", "title": "Lens", "categories": [["Electronics", "Camera & Photo", '
        '"Lenses"], ["Electronics", "Accessories"]], "keywords": ["wide angle", "Lenses"]}\n'
        '{"id": "p2", "title": "Pipette", "categories": "Lab > Liquid handling", '
        '"keywords": ["for lab use"], "description": "A pipette."}\n'
        '{"id": "p3", "title": "Plain", "categories": ["Toys", "Games"]}\n')
    (folder / "interactions.csv").write_text("user,item\nu,p1\nu,p2\nu,p3\n")
    ds = load_generic(folder)
    lens, pipette, plain = (ds.items[k] for k in ("p1", "p2", "p3"))
    assert lens.categories == ("Electronics",)
    assert lens.keywords == ("wide angle", "Lenses", "Camera & Photo", "Accessories")
    assert pipette.categories == ("Lab",) and pipette.keywords == ("for lab use",
                                                                  "Liquid handling")
    assert plain.categories == ("Toys", "Games") and plain.keywords == ()
    assert "Keywords: for lab use, Liquid handling" in pipette.document()
    assert pipette.document().endswith("A pipette.")
