"""Tiny dataset folders written by the tests themselves, one per supported layout."""

from __future__ import annotations

import functools
import io
import threading
import zipfile
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ML_MOVIES = """movieId,title,genres
1,Toy Story (1995),Adventure|Animation|Children|Comedy|Fantasy
2,"American President, The (1995)",Comedy|Drama|Romance
3,Heat (1995),Action|Crime|Thriller
4,Babylon 5,(no genres listed)
5,Death Note: Desu nôto (2006–2007),Animation
"""
ML_RATINGS = """userId,movieId,rating,timestamp
1,1,4.0,100
1,2,3.5,200
1,3,5.0,300
1,4,0.5,400
2,3,4.0,150
2,1,2.0,250
2,5,3.0,350
3,1,5.0,500
3,2,4.5,600
"""
ML_TAGS = """userId,movieId,tag,timestamp
1,1,pixar,1
2,1,fun,2
3,1,Pixar,3
1,1,pixar ,4
1,3,heist,5
2,3,Al Pacino,6
2,99,orphan,7
1,2,,8
"""


def write(folder: Path, files: dict[str, str | bytes], encoding: str = "utf-8") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding=encoding)
    return folder


@pytest.fixture
def ml_csv_dir(tmp_path: Path) -> Path:
    """A four-file ml-latest-small look-alike: 5 movies, 3 users, 9 ratings, tags."""
    return write(tmp_path / "ml-tiny", {
        "movies.csv": ML_MOVIES, "ratings.csv": ML_RATINGS, "tags.csv": ML_TAGS,
        "links.csv": "movieId,imdbId,tmdbId\n"})


GENRES_100K = ("unknown|0\nAction|1\nAdventure|2\nAnimation|3\nChildren's|4\nComedy|5\nCrime|6\n"
               "Documentary|7\nDrama|8\nFantasy|9\nFilm-Noir|10\nHorror|11\nMusical|12\n"
               "Mystery|13\nRomance|14\nSci-Fi|15\nThriller|16\nWar|17\nWestern|18\n\n")


def flags(*on: int) -> str:
    return "|".join("1" if i in on else "0" for i in range(19))


@pytest.fixture
def ml100k_dir(tmp_path: Path) -> Path:
    items = (f"1|Toy Story (1995)|01-Jan-1995||http://us.imdb.com/M/x|{flags(3, 4, 5)}\n"
             f"2|Café au lait (1993)|01-Jan-1993||http://x|{flags(5, 14)}\n"
             f"3|unknown|||http://x|{flags(0)}\n"
             f"4|Nameless|01-Jan-1997||http://x|{flags(8)}\n")
    data = "1\t1\t5\t874965758\n1\t2\t3\t874965759\n2\t3\t4\t874965760\n2\t4\t1\t874965761\n"
    folder = tmp_path / "ml-100k"
    write(folder, {"u.genre": GENRES_100K, "u.data": data})
    (folder / "u.item").write_bytes(items.encode("latin-1"))
    return folder


@pytest.fixture
def ml1m_dir(tmp_path: Path) -> Path:
    movies = ("1::Toy Story (1995)::Animation|Children's|Comedy\n"
              "2::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
              "3::Lumière \"Quoted\" (1996)::Drama\n")
    ratings = "1::1::5::978300760\n1::2::4::978300761\n2::3::3::978300762\n"
    folder = tmp_path / "ml-1m"
    folder.mkdir()
    (folder / "movies.dat").write_bytes(movies.encode("latin-1"))
    (folder / "ratings.dat").write_text(ratings)
    return folder


GENERIC_ITEMS = (
    '{"id": "tt1", "title": "Heat (1995)", "categories": ["Action", "Crime"], '
    '"description": "Cops and robbers."}\n'
    '{"id": 2, "title": "Amélie", "year": 2001, "genres": ["Comedy", " "], "tags": ["paris"], '
    '"plot": "A waitress."}\n'
    '\n'
    '{"id": "x3", "title": "Untitled", "rating_count": 7}\n'
)
GENERIC_INTERACTIONS = """user,item,rating,timestamp,source
u1,tt1,4.5,10,web
u1,2,,20,web
u2,x3,3,,app
u2,tt1,1,40,app
"""


@pytest.fixture
def generic_dir(tmp_path: Path) -> Path:
    return write(tmp_path / "shop", {"items.jsonl": GENERIC_ITEMS,
                                     "interactions.csv": GENERIC_INTERACTIONS})


@pytest.fixture
def ml_text() -> dict[str, str]:
    """The tiny MovieLens CSV contents, to edit and write back (importlib mode: no imports)."""
    return {"movies.csv": ML_MOVIES, "ratings.csv": ML_RATINGS, "tags.csv": ML_TAGS}


@pytest.fixture
def make_folder(tmp_path: Path):
    """``make_folder("name", {"file": text})`` writes a folder under tmp_path."""
    return lambda name, files: write(tmp_path / name, files)


def _make_zip(members: dict[str, str] | None = None, prefix: str = "ml-latest-small/") -> bytes:
    """A zip laid out like ml-latest-small.zip (default: the tiny CSVs above)."""
    if members is None:
        members = {"movies.csv": ML_MOVIES, "ratings.csv": ML_RATINGS, "tags.csv": ML_TAGS,
                   "links.csv": "movieId,imdbId,tmdbId\n"}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in members.items():
            archive.writestr(prefix + name, text)
    return buffer.getvalue()


@pytest.fixture
def make_zip():
    return _make_zip


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep test output clean
        pass


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """(folder, base URL): the folder is served on http://127.0.0.1:<port>/ during the test."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0),
                                 functools.partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02},
                              daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
