"""Download, verify and unpack the MovieLens archives into the cache, once.

``fetch_dataset("movielens-small", cache_dir)`` returns ``cache_dir/datasets/ml-latest-small``.
The archive is streamed to a temporary file (with a rich progress bar), its SHA-256 is
checked against the pinned value, the zip is CRC-checked and must contain the expected
files, and it is unpacked into a staged folder that becomes the final one in one rename
(:func:`tastelens.fsutil.staged_dir`). A manifest (``.tastelens-download.json``: URL,
SHA-256, size, time, files) records what was downloaded. Any failure leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from tastelens.errors import DownloadError
from tastelens.fsutil import atomic_write_json, staged_dir

BASE_URL = "https://files.grouplens.org/datasets/movielens/"
MANIFEST = ".tastelens-download.json"


@dataclass(frozen=True)
class RemoteDataset:
    """A downloadable archive and what a good copy of it contains."""

    name: str
    url: str
    folder: str
    """Folder name inside the zip and in the cache."""
    members: tuple[str, ...]
    """Files that must be in the archive (relative to ``folder``)."""
    sha256: str | None
    """SHA-256 of the archive as published (the same value appears in TFDS and many
    independent projects); None skips the check."""


REMOTE_DATASETS: dict[str, RemoteDataset] = {
    d.name: d for d in (
        RemoteDataset("movielens-small", BASE_URL + "ml-latest-small.zip", "ml-latest-small",
                      ("movies.csv", "ratings.csv", "tags.csv", "links.csv"),
                      "696d65a3dfceac7c45750ad32df2c259311949efec81f0f144fdfb91ebc9e436"),
        RemoteDataset("movielens-100k", BASE_URL + "ml-100k.zip", "ml-100k",
                      ("u.data", "u.item", "u.genre"),
                      "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229"),
        RemoteDataset("movielens-1m", BASE_URL + "ml-1m.zip", "ml-1m",
                      ("movies.dat", "ratings.dat"),
                      "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20"),
    )
}
_PINNED = object()


def remote_dataset(name: str) -> RemoteDataset:
    try:
        return REMOTE_DATASETS[name]
    except KeyError:
        raise DownloadError(f"unknown dataset {name!r}; choose one of "
                            f"{', '.join(REMOTE_DATASETS)}") from None


def dataset_dir(name: str, cache_dir: Path) -> Path:
    """Where ``fetch_dataset(name, cache_dir)`` puts (or has put) the dataset."""
    return Path(cache_dir) / "datasets" / remote_dataset(name).folder


def is_complete(folder: Path, remote: RemoteDataset) -> bool:
    return folder.is_dir() and all((folder / m).is_file() for m in remote.members)


def fetch_dataset(name: str, cache_dir: Path, *, progress: bool = True, force: bool = False,
                  url: str | None = None, sha256: str | None | object = _PINNED) -> Path:
    """Download ``name`` into ``cache_dir/datasets/<folder>`` unless it is already there.

    ``url`` overrides the download address (tests serve a local zip); with an overridden
    URL the pinned checksum is not applied unless ``sha256`` is given. ``force`` downloads
    again and replaces the cached copy only once the new one is complete.
    """
    remote = remote_dataset(name)
    target = dataset_dir(name, cache_dir)
    if not force and is_complete(target, remote):
        return target
    if sha256 is _PINNED:
        sha256 = remote.sha256 if url is None else None
    url = url or remote.url
    hint = (f"download the zip elsewhere and pass `--data /path/to/{remote.folder}` "
            "(or set TASTELENS_DATA)")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(dir=target.parent, prefix=f".{remote.folder}.", suffix=".zip.part")
    try:
        with os.fdopen(fd, "wb") as fh:
            digest, size = _download(url, fh, label=f"{remote.folder}.zip", progress=progress,
                                     hint=hint)
        if sha256 is not None and digest != sha256:
            raise DownloadError(
                f"the archive from {url} has SHA-256 {digest}, expected {sha256}: the download "
                f"is corrupt or the file changed upstream; {hint}")
        prefix = _verify_zip(Path(part), remote, url, hint)
        with staged_dir(target) as staging:
            files = _extract(Path(part), prefix, staging)
            atomic_write_json(staging / MANIFEST, {
                "name": remote.name, "url": url, "sha256": digest,
                "sha256_verified": sha256 is not None, "bytes": size,
                "downloaded_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "files": files})
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(part)
    return target


def _download(url: str, fh: BinaryIO, *, label: str, progress: bool,
              hint: str) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    try:
        with httpx.stream("GET", url, follow_redirects=True,
                          timeout=httpx.Timeout(60.0, connect=15.0)) as response:
            if response.status_code != 200:
                raise DownloadError(f"could not download {url}: HTTP {response.status_code} "
                                    f"{response.reason_phrase}; {hint}")
            total = int(response.headers.get("content-length") or 0) or None
            with _progress_bar(progress) as bar:
                task = bar.add_task(label, total=total) if bar is not None else None
                for chunk in response.iter_bytes(1 << 16):
                    fh.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
                    if bar is not None:
                        bar.advance(task, len(chunk))
    except httpx.HTTPError as exc:
        reason = str(exc) or type(exc).__name__
        raise DownloadError(f"could not reach {url}: {reason}; {hint}") from None
    if total is not None and size != total:
        raise DownloadError(f"the download from {url} stopped after {size} of {total} bytes; "
                            f"try again, or {hint}")
    return digest.hexdigest(), size


def _progress_bar(enabled: bool):
    if not enabled:
        return contextlib.nullcontext(None)
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(),
                    TransferSpeedColumn(), TimeRemainingColumn(), console=Console(stderr=True))


def _verify_zip(path: Path, remote: RemoteDataset, url: str, hint: str) -> str:
    """CRC-check the archive and find the folder prefix its expected members live under."""
    if not zipfile.is_zipfile(path):
        with path.open("rb") as fh:
            head = fh.read(16)
        raise DownloadError(f"{url} did not return a zip archive ({path.stat().st_size} bytes "
                            f"starting {head!r}); {hint}")
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
            names = set(archive.namelist())
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise DownloadError(f"the archive from {url} is corrupt ({exc}); {hint}") from None
    if broken is not None:
        raise DownloadError(f"the archive from {url} is corrupt: {broken} fails its CRC check; "
                            f"{hint}")
    for prefix in (f"{remote.folder}/", ""):
        if all(prefix + member in names for member in remote.members):
            return prefix
    raise DownloadError(f"the archive from {url} does not contain the expected files "
                        f"{', '.join(remote.members)} (under {remote.folder}/); {hint}")


def _extract(path: Path, prefix: str, dest: Path) -> dict[str, int]:
    """Unpack the members under ``prefix`` into ``dest``; never write outside it."""
    files: dict[str, int] = {}
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(prefix):
                continue
            rel = PurePosixPath(info.filename[len(prefix):])
            if rel.is_absolute() or ".." in rel.parts or not rel.parts:
                raise DownloadError(f"refusing to unpack {info.filename!r}: it points outside "
                                    "the dataset folder")
            out = dest.joinpath(*rel.parts)
            out.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, out.open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            files[rel.as_posix()] = info.file_size
    return files
