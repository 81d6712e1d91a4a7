"""fetch_dataset against a zip served on 127.0.0.1 (never the real GroupLens server)."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import zipfile
from pathlib import Path

import pytest

from tastelens.data.download import MANIFEST, fetch_dataset
from tastelens.errors import DownloadError

ZIP_MEMBERS = {"movies.csv": "movieId,title,genres\n1,Heat (1995),Action\n",
               "ratings.csv": "userId,movieId,rating,timestamp\n1,1,4.0,100\n",
               "tags.csv": "userId,movieId,tag,timestamp\n",
               "links.csv": "movieId,imdbId,tmdbId\n", "README.txt": "hello\n"}


def leftovers(cache: Path) -> list[str]:
    datasets = cache / "datasets"
    return sorted(p.name for p in datasets.iterdir()) if datasets.exists() else []


def test_fetch_success_then_cached(served, make_zip, tmp_path: Path) -> None:
    root, base = served
    data = make_zip(ZIP_MEMBERS)
    (root / "ml.zip").write_bytes(data)
    cache = tmp_path / "cache"
    path = fetch_dataset("movielens-small", cache, progress=False, url=base + "ml.zip")
    assert path == cache / "datasets" / "ml-latest-small"
    assert (path / "ratings.csv").read_text() == ZIP_MEMBERS["ratings.csv"]
    manifest = json.loads((path / MANIFEST).read_text())
    assert manifest["sha256"] == hashlib.sha256(data).hexdigest()
    assert manifest["bytes"] == len(data) and manifest["sha256_verified"] is False
    assert set(manifest["files"]) == set(ZIP_MEMBERS)
    assert leftovers(cache) == ["ml-latest-small"]  # no partial files or staging folders
    # second call: no network needed
    (root / "ml.zip").unlink()
    assert fetch_dataset("movielens-small", cache, progress=False, url=base + "ml.zip") == path


def test_fetch_with_checksum_and_progress_bar(served, make_zip, tmp_path: Path) -> None:
    root, base = served
    data = make_zip(ZIP_MEMBERS, prefix="")  # members at the archive root are accepted too
    (root / "ml.zip").write_bytes(data)
    path = fetch_dataset("movielens-small", tmp_path / "c", progress=True, url=base + "ml.zip",
                         sha256=hashlib.sha256(data).hexdigest())
    assert json.loads((path / MANIFEST).read_text())["sha256_verified"] is True


def test_force_replaces_cached_copy(served, make_zip, tmp_path: Path) -> None:
    root, base = served
    cache = tmp_path / "cache"
    (root / "ml.zip").write_bytes(make_zip(ZIP_MEMBERS))
    path = fetch_dataset("movielens-small", cache, progress=False, url=base + "ml.zip")
    changed = dict(ZIP_MEMBERS, **{"README.txt": "v2\n"})
    (root / "ml.zip").write_bytes(make_zip(changed))
    fetch_dataset("movielens-small", cache, progress=False, url=base + "ml.zip", force=True)
    assert (path / "README.txt").read_text() == "v2\n"
    assert leftovers(cache) == ["ml-latest-small"]


@pytest.mark.parametrize("payload, fragment", [
    (b"<html>not a zip</html>", "did not return a zip archive"),
    ("crc", "fails its CRC check"),
    ("missing", "does not contain the expected files"),
])
def test_corrupt_archive_leaves_nothing_behind(served, make_zip, tmp_path: Path, payload,
                                               fragment) -> None:
    root, base = served
    if payload == "crc":
        stored = io.BytesIO()
        with zipfile.ZipFile(stored, "w", zipfile.ZIP_STORED) as archive:
            for name, text in ZIP_MEMBERS.items():
                archive.writestr("ml-latest-small/" + name, text)
        payload = stored.getvalue().replace(b"Heat (1995)", b"Heat (1996)")
    elif payload == "missing":
        payload = make_zip({k: v for k, v in ZIP_MEMBERS.items() if k != "ratings.csv"})
    (root / "ml.zip").write_bytes(payload)
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=fragment) as err:
        fetch_dataset("movielens-small", cache, progress=False, url=base + "ml.zip")
    assert "--data /path/to/ml-latest-small" in str(err.value)
    assert leftovers(cache) == []


def test_checksum_mismatch(served, make_zip, tmp_path: Path) -> None:
    root, base = served
    (root / "ml.zip").write_bytes(make_zip(ZIP_MEMBERS))
    with pytest.raises(DownloadError, match="expected 000"):
        fetch_dataset("movielens-small", tmp_path / "c", progress=False, url=base + "ml.zip",
                      sha256="0" * 64)
    assert leftovers(tmp_path / "c") == []


def test_http_error_status(served, tmp_path: Path) -> None:
    _, base = served
    with pytest.raises(DownloadError, match=r"could not download .*missing.zip: HTTP 404"):
        fetch_dataset("movielens-small", tmp_path / "c", progress=False, url=base + "missing.zip")
    assert leftovers(tmp_path / "c") == []


def test_unreachable_url_says_what_to_do(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ml-latest-small.zip"
    with pytest.raises(DownloadError) as err:
        fetch_dataset("movielens-small", tmp_path / "c", progress=False, url=url)
    message = str(err.value)
    assert message.startswith(f"could not reach {url}: ")
    assert ("download the zip elsewhere and pass `--data /path/to/ml-latest-small` "
            "(or set TASTELENS_DATA)") in message
    assert leftovers(tmp_path / "c") == []


def test_unknown_dataset_name(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="choose one of movielens-small, movielens-100k"):
        fetch_dataset("movielens-25m", tmp_path)
