"""Side information: the strict literal reader, the file formats, the joins, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from tastelens.data import load_dataset
from tastelens.data.literal import LiteralError, parse_literal
from tastelens.data.side_info import apply_side_info, read_side_info
from tastelens.errors import DataFormatError

TMDB = ('''id,keywords
862,"[{'id': 931, 'name': 'jealousy'}, {'id': 4290, 'name': 'toy'}, '''
        '''{'id': 1, 'name': ""children's book""}]"
949,"[{'id': 642, 'name': 'robbery'}, {'id': 703, 'name': 'detective'}]"
949,"[{'id': 642, 'name': 'robbery'}, {'id': 9, 'name': 'los angeles'}]"
5,[]
123456,"[{'id': 1, 'name': 'unmatched'}]"
''')
LINKS = "movieId,imdbId,tmdbId\n1,0114709,862\n2,0112346,\n3,0113277,949\n"


@pytest.mark.parametrize("text, want", [
    ("[{'id': 1, 'name': 'it\\'s'}, {\"id\": 2, \"name\": \"b\"}]",
     [{"id": 1, "name": "it's"}, {"id": 2, "name": "b"}]),
    ("['a', 1.5, True, None, []]", ["a", 1.5, True, None, []]),
    ('["caf\\u00e9"]', ["café"]),
])
def test_literal_reads(text: str, want: object) -> None:
    assert parse_literal(text) == want


@pytest.mark.parametrize("text, fragment", [
    ("[__import__('os')]", "column 2"),
    ("[1, 2", "expected ',' or ']' at column 6"),
    ("[1,", "the end of the text"),
    ("{'a' 1}", "expected ':'"),
    ("['a'] x", "column 7"),
    ("[1 2]", "expected ',' or ']'"),
    ("['\\q']", "unknown escape"),
])
def test_literal_refuses(text: str, fragment: str) -> None:
    with pytest.raises(LiteralError, match=fragment):
        parse_literal(text)


def test_tmdb_file_joins_through_links(ml_csv_dir: Path) -> None:
    (ml_csv_dir / "links.csv").write_text(LINKS)
    side = ml_csv_dir.parent / "keywords.csv"
    side.write_text(TMDB)
    ds = load_dataset(ml_csv_dir, side_info=side)
    assert ds.items["1"].keywords == ("jealousy", "toy", "children's book")
    assert ds.items["3"].keywords == ("robbery", "detective", "los angeles")  # rows merged
    assert ds.items["5"].keywords == () and ds.items["2"].keywords == ()
    report = ds.report["side_info"]
    assert report["join"] == "tmdbId via links.csv"  # 'id' matched tmdbIds best
    assert (report["items_reached"], report["items_with_keywords"]) == (2, 2)
    assert report["rows_unmatched"] == 2  # tmdb ids 5 and 123456 are in no link
    assert "Keywords: jealousy, toy" in ds.items["1"].document()
    assert ds.descriptor_index.items("robbery") == ("3",)


def test_jsonl_by_item_id_with_descriptions(ml_csv_dir: Path) -> None:
    side = ml_csv_dir.parent / "side.jsonl"
    side.write_text('{"item": "3", "keywords": ["heist", "bank"], "description": "Cops."}\n\n'
                    '{"item": 2, "description": "A president."}\n')
    ds = load_dataset(ml_csv_dir, side_info=side)
    assert ds.items["3"].keywords == ("heist", "bank") and ds.items["3"].text == "Cops."
    assert ds.items["2"].keywords == () and ds.items["2"].text == "A president."
    assert ds.report["side_info"]["join"] == "item"


def test_pipe_separated_csv_by_imdb_id(ml_csv_dir: Path) -> None:
    (ml_csv_dir / "links.csv").write_text(LINKS)
    side = ml_csv_dir.parent / "side.tsv"
    side.write_text("imdb_id\tkeywords\toverview\ntt0113277\theist | bank robbery\tL.A.\n")
    ds = load_dataset(ml_csv_dir, side_info=side)
    assert ds.items["3"].keywords == ("heist", "bank robbery") and ds.items["3"].text == "L.A."


def test_keywords_merge_with_the_catalogs_own(generic_dir: Path, tmp_path: Path) -> None:
    side = tmp_path / "side.csv"
    side.write_text('id,keywords\ntt1,"[""heist"", ""Cops""]"\n')
    ds = load_dataset(generic_dir, side_info=side)
    assert ds.items["tt1"].keywords == ("heist", "Cops")
    assert ds.items["tt1"].text == "Cops and robbers."  # the catalog's own text stays


@pytest.mark.parametrize("name, text, line, field, fragment", [
    ("s.csv", "id,keywords\n862,\"[{'id': 1, 'name': 'ok'}]\"\n862,\"[{'id': 1, name}]\"\n",
     3, "keywords", "column"),
    ("s.csv", "id,keywords\n862,\"['a', 5]\"\n", 2, "keywords", "string"),
    ("s.csv", "movie,keywords\n1,a\n", 1, None, "exactly one id column"),
    ("s.csv", "item,genre\n1,a\n", 1, "keywords", "expected a 'keywords'"),
    ("s.csv", "item,keywords\n1,a,b\n", 2, None, "3 fields"),
    ("s.csv", "item,keywords\n,a\n", 2, "item", "missing value"),
    ("s.jsonl", '{"item": "1", "keywords": ["a"]}\n{"item": "2", "keywords": "a"}\n', 2,
     "keywords", "expected a list"),
    ("s.jsonl", '{"item": "1", "keywords": ["a"]}\n{"item": [1], "keywords": []}\n', 2,
     "item", "string or integer id"),
    ("s.jsonl", '{"item": "1", "keywords": ["a"]}\n{"item": "2", "keywords": ["a"\n', 2,
     None, "invalid JSON"),
])
def test_bad_side_info_names_file_line_field(ml_csv_dir: Path, name: str, text: str,
                                             line: int, field: str | None,
                                             fragment: str) -> None:
    (ml_csv_dir / "links.csv").write_text(LINKS)
    side = ml_csv_dir.parent / name
    side.write_text(text)
    with pytest.raises(DataFormatError) as err:
        load_dataset(ml_csv_dir, side_info=side)
    assert (err.value.path.name, err.value.line, err.value.field) == (name, line, field)
    assert fragment in str(err.value)


def test_no_row_matches_is_an_error(ml_csv_dir: Path) -> None:
    side = ml_csv_dir.parent / "s.csv"
    side.write_text("id,keywords\n999999,a\n")
    with pytest.raises(DataFormatError, match="no row's id matches .*'999999'"):
        load_dataset(ml_csv_dir, side_info=side)


def test_link_join_without_links_file(generic_dir: Path, tmp_path: Path) -> None:
    side = tmp_path / "s.csv"
    side.write_text("tmdbId,keywords\n1,a\n")
    with pytest.raises(DataFormatError, match="no links.csv with a tmdbId column"):
        load_dataset(generic_dir, side_info=side)


@pytest.mark.parametrize("name", ["missing.csv", "side.xml"])
def test_missing_or_unknown_file(tmp_path: Path, name: str) -> None:
    if name.endswith(".xml"):
        (tmp_path / name).write_text("<x/>")
    with pytest.raises(DataFormatError, match="side-information"):
        read_side_info(tmp_path / name)


def test_apply_keeps_the_input_dataset(ml_csv_dir: Path) -> None:
    ds = load_dataset(ml_csv_dir)
    side = ml_csv_dir.parent / "s.csv"
    side.write_text("item,keywords\n1,pixar\n")
    joined = apply_side_info(ds, side)
    assert joined.items["1"].keywords == ("pixar",) and ds.items["1"].keywords == ()
