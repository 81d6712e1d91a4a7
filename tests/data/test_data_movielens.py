"""MovieLens loaders on tiny files: parsing, validation and error messages."""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tastelens.data.movielens import (
    _interactions,
    _ratings,
    load_ml1m,
    load_ml100k,
    load_movielens_csv,
)
from tastelens.data.parsing import read_table, title_year
from tastelens.errors import DataFormatError


def test_csv_loader_reads_items_interactions_and_tags(ml_csv_dir: Path) -> None:
    ds = load_movielens_csv(ml_csv_dir)
    assert ds.n_items == 5 and len(ds.interactions) == 9
    assert ds.item_ids == ["1", "2", "3", "4", "5"]  # catalog keeps file order
    heat = ds.items["3"]
    assert (heat.title, heat.year, heat.categories) == ("Heat (1995)", 1995,
                                                        ("Action", "Crime", "Thriller"))
    assert ds.items["2"].title == "American President, The (1995)"  # quoted comma survives
    assert ds.items["4"].year is None and ds.items["4"].categories == ()
    assert ds.items["5"].year == 2006
    # Case-insensitive dedupe, most frequent first, first-seen casing, blanks ignored.
    assert ds.items["1"].tags == ("pixar", "fun")
    assert ds.items["3"].tags == ("heist", "Al Pacino")
    assert ds.items["2"].tags == ()
    assert ds.report["tags"] == {"tag_rows": 7, "tag_rows_unknown_item": 1, "items_with_tags": 2}
    frame = ds.interactions
    assert list(frame.columns) == ["user", "item", "rating", "timestamp"]
    assert frame["timestamp"].dtype == np.int64 and frame["rating"].dtype == np.float64
    assert frame.iloc[0].tolist() == ["1", "1", 4.0, 100]
    assert isinstance(frame["user"].iloc[0], str)


@pytest.mark.parametrize("title, year", [
    ("Heat (1995)", 1995), ("Babylon 5", None), ("Death Note: Desu nôto (2006–2007)", 2006),
    ("Heat (1995) ", 1995), ("1984 (1984)", 1984), ("2001", None)])
def test_title_year(title: str, year: int | None) -> None:
    assert title_year(title) == year


@pytest.mark.parametrize("line, bad_row, field, fragment", [
    (4, "1,3,abc,300", "rating", "expected a number between 0.5 and 5, got 'abc'"),
    (3, "1,2,7.5,200", "rating", "between 0.5 and 5, got '7.5'"),
    (5, "1,4,0.5,12.5", "timestamp", "expected Unix seconds (an integer), got '12.5'"),
    (6, "2,3,4.0,", "timestamp", "missing value"),
    (2, "x,1,4.0,100", "userId", "expected an integer id, got 'x'"),
    (7, "2,1,2.0,-5", "timestamp", ">= 0"),
])
def test_malformed_rating_row_names_file_line_and_field(
        make_folder, ml_text, line: int, bad_row: str, field: str, fragment: str) -> None:
    rows = ml_text["ratings.csv"].splitlines()
    assert rows[line - 1] != bad_row
    rows[line - 1] = bad_row
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"],
                                "ratings.csv": "\n".join(rows)})
    with pytest.raises(DataFormatError) as err:
        load_movielens_csv(folder)
    assert (err.value.path.name, err.value.line, err.value.field) == ("ratings.csv", line, field)
    assert f"ratings.csv, line {line}, field '{field}'" in str(err.value)
    assert fragment in str(err.value)


def test_line_numbers_count_blank_lines(make_folder, ml_text) -> None:
    ratings = "userId,movieId,rating,timestamp\n1,1,4.0,100\n\n1,2,oops,200\n"
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"], "ratings.csv": ratings})
    with pytest.raises(DataFormatError, match="line 4, field 'rating'"):
        load_movielens_csv(folder)


def test_missing_column_is_reported_on_the_header_line(make_folder, ml_text) -> None:
    ratings = "userId,movieId,timestamp\n1,1,100\n"
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"], "ratings.csv": ratings})
    with pytest.raises(DataFormatError) as err:
        load_movielens_csv(folder)
    assert (err.value.line, err.value.field) == (1, "rating")
    assert "missing column" in str(err.value)
    assert "'userId', 'movieId', 'timestamp'" in str(err.value)


def test_row_with_too_many_fields(make_folder, ml_text) -> None:
    ratings = ml_text["ratings.csv"] + "3,3,4.0,700,extra\n"
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"], "ratings.csv": ratings})
    with pytest.raises(DataFormatError, match=r"ratings.csv, line 11: cannot split"):
        load_movielens_csv(folder)


def test_duplicate_movie_id_names_both_lines(make_folder, ml_text) -> None:
    movies = ml_text["movies.csv"] + "3,Heat again (1995),Action\n"
    folder = make_folder("ml", {"movies.csv": movies, "ratings.csv": ml_text["ratings.csv"]})
    with pytest.raises(DataFormatError) as err:
        load_movielens_csv(folder)
    assert "duplicate item id '3'" in str(err.value)
    assert "first on line 4, again on line 7" in str(err.value)
    assert err.value.path.name == "movies.csv"


@pytest.mark.parametrize("content, fragment", [
    ("", "the file is empty"), ("userId,movieId,rating,timestamp\n", "no data rows")])
def test_empty_ratings_file(make_folder, ml_text, content: str, fragment: str) -> None:
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"], "ratings.csv": content})
    with pytest.raises(DataFormatError, match=fragment) as err:
        load_movielens_csv(folder)
    assert err.value.path.name == "ratings.csv"


def test_header_only_tags_file_means_no_tags(make_folder, ml_text) -> None:
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"],
                                "ratings.csv": ml_text["ratings.csv"],
                                     "tags.csv": "userId,movieId,tag,timestamp\n"})
    ds = load_movielens_csv(folder)
    assert all(item.tags == () for item in ds.items.values())


def test_unknown_items_are_reported_logged_and_dropped(make_folder, ml_text, caplog) -> None:
    ratings = ml_text["ratings.csv"] + "3,42,4.0,700\n3,43,4.0,800\n3,42,1.0,900\n"
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"], "ratings.csv": ratings})
    with caplog.at_level(logging.WARNING, logger="tastelens.data"):
        ds = load_movielens_csv(folder)
    assert len(ds.interactions) == 9
    unknown = ds.report["unknown_items"]
    assert unknown["rows_dropped"] == 3 and unknown["distinct_ids"] == 2
    assert unknown["examples"] == ["42", "43"]
    assert "3 interactions refer to 2 item ids" in caplog.text
    assert set(ds.interactions["item"]) <= set(ds.items)


def test_ml100k_loader(ml100k_dir: Path) -> None:
    ds = load_ml100k(ml100k_dir)
    assert ds.n_items == 4 and len(ds.interactions) == 4
    toy = ds.items["1"]
    assert toy.categories == ("Animation", "Children's", "Comedy") and toy.year == 1995
    assert ds.items["2"].title == "Café au lait (1993)"  # latin-1 decoded
    assert ds.items["3"].categories == () and ds.items["3"].year is None  # 'unknown' genre
    assert ds.items["4"].year == 1997  # from the release date when the title has none
    assert ds.interactions.iloc[0].tolist() == ["1", "1", 5.0, 874965758]
    assert ds.report["format"] == "movielens-100k"


def test_ml100k_bad_genre_flag(ml100k_dir: Path) -> None:
    path = ml100k_dir / "u.item"
    lines = path.read_bytes().decode("latin-1").splitlines()
    lines[1] = lines[1][:-1] + "2"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    with pytest.raises(DataFormatError, match=r"u.item, line 2, field 'genre flag 19 \(Western\)'"):
        load_ml100k(ml100k_dir)


def test_ml100k_bad_rating_line_number_without_header(ml100k_dir: Path) -> None:
    path = ml100k_dir / "u.data"
    path.write_text(path.read_text() + "3\t1\tfive\t874965762\n")
    with pytest.raises(DataFormatError) as err:
        load_ml100k(ml100k_dir)
    assert (err.value.path.name, err.value.line, err.value.field) == ("u.data", 5, "rating")


def test_ml1m_loader(ml1m_dir: Path) -> None:
    ds = load_ml1m(ml1m_dir)
    assert ds.items["2"].title == "Star Wars: Episode IV - A New Hope (1977)"
    assert ds.items["2"].categories == ("Action", "Sci-Fi") and ds.items["2"].year == 1977
    assert ds.items["3"].title == 'Lumière "Quoted" (1996)'
    assert ds.interactions["rating"].tolist() == [5.0, 4.0, 3.0]
    assert not math.isnan(ds.interactions["rating"].iloc[0])


def test_ml1m_malformed_row(ml1m_dir: Path) -> None:
    (ml1m_dir / "ratings.dat").write_text("1::1::5::978300760\n1::2::4::soon\n")
    with pytest.raises(DataFormatError, match=r"ratings.dat, line 2, field 'timestamp'"):
        load_ml1m(ml1m_dir)


def test_extra_field_on_first_data_line(make_folder, ml_text) -> None:
    # pandas would silently turn the surplus field into an index; we refuse instead
    rows = ml_text["ratings.csv"].splitlines()
    rows[1] += ",oops"
    folder = make_folder("ml", {"movies.csv": ml_text["movies.csv"],
                                "ratings.csv": "\n".join(rows) + "\n"})
    with pytest.raises(DataFormatError, match=r"ratings.csv, line 2: more fields than the 4"):
        load_movielens_csv(folder)


def test_fast_and_precise_paths_agree(make_folder, ml_text) -> None:
    """The typed fast path and the string-based path (used on errors) give the same frame."""
    odd = ml_text["ratings.csv"].replace("1,1,4.0,100", "+1,1,4.0,1e2").replace(
        "3,2,4.5,600", "3, 2,4.5,600.0") + "\n"
    assert odd != ml_text["ratings.csv"]
    path = make_folder("ml", {"ratings.csv": odd}) / "ratings.csv"
    fast = _ratings(path, sep=",", header=True, expect="")
    slow = _interactions(read_table(path, required=("userId", "movieId", "rating", "timestamp")),
                         "userId", "movieId", "rating", "timestamp")
    pd.testing.assert_frame_equal(fast, slow)
    assert fast["user"].tolist()[0] == "1" and fast["timestamp"].tolist()[0] == 100


def test_non_utf8_movies_file_names_the_line(make_folder, ml_text) -> None:
    folder = make_folder("ml", {"ratings.csv": ml_text["ratings.csv"]})
    text = ml_text["movies.csv"].replace("Heat (1995)", "Héat (1995)")
    (folder / "movies.csv").write_bytes(text.encode("utf-8").replace("é".encode(), b"\xe9"))
    with pytest.raises(DataFormatError, match=r"movies.csv, line 4: the bytes are not valid utf-8"):
        load_movielens_csv(folder)
