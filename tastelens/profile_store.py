"""SQLite store for interest profiles: one row per user and profile version.

A profile is keyed by what produced it: the user's history hash, the model, the adapter
and the prompt version. A job asks :meth:`ProfileStore.is_current` before doing work, so a
restarted job skips finished users and only users whose history (or model, adapter, prompt)
changed are recomputed. Writes are transactions in WAL mode, so killing a job at any moment
loses no committed profile and leaves no partial row.

Jobs write through :meth:`ProfileStore.put_many`: a batch of profiles and their failure
records in one transaction, exactly once — a profile whose key equals the user's latest
real (non-fallback) version is not stored again, so a result delivered twice (a retried
worker task, a re-sent batch) never makes a duplicate version.

The same database keeps each user's own edits of their taste (:mod:`tastelens.taste`) in a
table of their own, ``overrides``, one row per version: profile versions come and go with
rebuilds, the edits stay. An edit is read, applied and written in one ``BEGIN IMMEDIATE``
transaction, so two edits at once never lose one another and a crash leaves either the old
version or the new one. The same transaction deletes the user's versions older than the last
``overrides_kept`` (:data:`OVERRIDES_KEPT`): every version holds the whole state, so the
latest alone is enough to serve, and a user toggling an interest back and forth cannot grow
the table without bound. Version numbers keep counting from the latest.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tastelens.errors import TastelensError, UnknownIdError
from tastelens.taste import TasteOverrides

_SCHEMA = """
CREATE TABLE IF NOT EXISTS profiles (
    user           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    history_hash   TEXT    NOT NULL,
    model          TEXT    NOT NULL,
    adapter        TEXT    NOT NULL DEFAULT '',
    prompt_version TEXT    NOT NULL,
    fallback       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT    NOT NULL,
    profile_json   TEXT    NOT NULL,
    PRIMARY KEY (user, version)
);
CREATE INDEX IF NOT EXISTS profiles_key
    ON profiles (user, history_hash, model, adapter, prompt_version);
CREATE TABLE IF NOT EXISTS overrides (
    user           TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    created_at     TEXT    NOT NULL,
    overrides_json TEXT    NOT NULL,
    PRIMARY KEY (user, version)
);
CREATE TABLE IF NOT EXISTS failures (
    user        TEXT PRIMARY KEY,
    attempts    INTEGER NOT NULL,
    last_error  TEXT    NOT NULL,
    updated_at  TEXT    NOT NULL
);
"""


OVERRIDES_KEPT = 20
"""Versions of a user's taste edits kept by default (the latest and the 19 before it)."""


class OverridesConflictError(TastelensError):
    """An edit was made on an older version of the user's overrides than the stored one."""


def default_store_path(cache_dir: Path, dataset_name: str) -> Path:
    """Where a dataset's profiles live unless a command names another store."""
    return cache_dir / "profiles" / f"{dataset_name}.sqlite"


@dataclass(frozen=True)
class ProfileKey:
    """What identifies a profile's inputs; a change in any field means recompute."""

    user: str
    history_hash: str
    model: str
    adapter: str = ""
    prompt_version: str = ""


@dataclass(frozen=True)
class ProfileWrite:
    """One profile for :meth:`ProfileStore.put_many`; ``failure`` (the reason a fallback was
    used) is recorded as a failed attempt in the same transaction."""

    key: ProfileKey
    profile_json: str
    fallback: bool = False
    failure: str | None = None


@dataclass(frozen=True)
class StoredProfile:
    key: ProfileKey
    version: int
    fallback: bool
    created_at: str
    profile_json: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ProfileStore:
    """Thread-safe access to one SQLite profile database (WAL journal)."""

    def __init__(self, path: Path, *, overrides_kept: int = OVERRIDES_KEPT) -> None:
        if overrides_kept < 1:
            raise ValueError("overrides_kept must be >= 1")
        self.path = Path(path)
        self.overrides_kept = overrides_kept
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> ProfileStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def is_current(self, key: ProfileKey) -> bool:
        """True when the latest profile of ``key.user`` was made from exactly these inputs."""
        latest = self.latest(key.user)
        return latest is not None and latest.key == key

    def put(self, key: ProfileKey, profile_json: str, *, fallback: bool = False) -> int:
        """Store a new profile version for the user. A real (non-fallback) profile clears the
        user's recorded failures; a fallback keeps them so retries stay bounded."""
        with self._tx() as conn:
            row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM profiles WHERE user = ?",
                               (key.user,)).fetchone()
            version = int(row[0]) + 1
            conn.execute(
                "INSERT INTO profiles (user, version, history_hash, model, adapter, prompt_version,"
                " fallback, created_at, profile_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key.user, version, key.history_hash, key.model, key.adapter, key.prompt_version,
                 int(fallback), _now(), profile_json))
            if not fallback:
                conn.execute("DELETE FROM failures WHERE user = ?", (key.user,))
        return version

    def put_many(self, writes: Iterable[ProfileWrite]) -> list[int | None]:
        """Store a batch in one transaction; per write, the new version, or None when it was
        already stored: the user's latest version has the same key and is real (a fallback of
        the same inputs is a new attempt and is stored, a real profile is stored once)."""
        versions: list[int | None] = []
        with self._tx() as conn:
            for w in writes:
                row = conn.execute(
                    "SELECT version, history_hash, model, adapter, prompt_version, fallback"
                    " FROM profiles WHERE user = ? ORDER BY version DESC LIMIT 1",
                    (w.key.user,)).fetchone()
                if row is not None and ProfileKey(w.key.user, *row[1:5]) == w.key \
                        and not row[5]:
                    versions.append(None)
                    continue
                version = (int(row[0]) if row else 0) + 1
                conn.execute(
                    "INSERT INTO profiles (user, version, history_hash, model, adapter,"
                    " prompt_version, fallback, created_at, profile_json)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (w.key.user, version, w.key.history_hash, w.key.model, w.key.adapter,
                     w.key.prompt_version, int(w.fallback), _now(), w.profile_json))
                if not w.fallback:
                    conn.execute("DELETE FROM failures WHERE user = ?", (w.key.user,))
                elif w.failure is not None:
                    self._count_failure(conn, w.key.user, w.failure)
                versions.append(version)
        return versions

    def latest(self, user: str) -> StoredProfile | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT user, history_hash, model, adapter, prompt_version, version, fallback,"
                " created_at, profile_json FROM profiles WHERE user = ?"
                " ORDER BY version DESC LIMIT 1", (user,)).fetchone()
        if row is None:
            return None
        return StoredProfile(key=ProfileKey(*row[:5]), version=row[5], fallback=bool(row[6]),
                             created_at=row[7], profile_json=row[8])

    def get(self, user: str) -> StoredProfile:
        stored = self.latest(user)
        if stored is None:
            raise UnknownIdError(
                f"no profile stored for user {user!r} in {self.path}; "
                f"run `tastelens profile build --users {user}` first")
        return stored

    def record_failure(self, user: str, error: str) -> int:
        """Count a failed attempt for ``user``; returns the number of attempts so far."""
        with self._tx() as conn:
            return self._count_failure(conn, user, error)

    @staticmethod
    def _count_failure(conn: sqlite3.Connection, user: str, error: str) -> int:
        conn.execute(
            "INSERT INTO failures (user, attempts, last_error, updated_at) VALUES (?, 1, ?, ?)"
            " ON CONFLICT(user) DO UPDATE SET attempts = attempts + 1,"
            " last_error = excluded.last_error, updated_at = excluded.updated_at",
            (user, error[:2000], _now()))
        row = conn.execute("SELECT attempts FROM failures WHERE user = ?", (user,)).fetchone()
        return int(row[0])

    def failures(self) -> dict[str, tuple[int, str]]:
        with self._lock:
            rows = self._conn.execute("SELECT user, attempts, last_error FROM failures").fetchall()
        return {user: (attempts, error) for user, attempts, error in rows}

    def users(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT user FROM profiles").fetchall()
        return [r[0] for r in rows]

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute(
                "SELECT COUNT(DISTINCT user) FROM profiles").fetchone()[0])

    # -- the users' own overrides (tastelens.taste) --------------------------------------
    def overrides(self, user: str) -> TasteOverrides:
        """The user's latest overrides (version 0, empty, when they never edited)."""
        with self._lock:
            return self._latest_overrides(self._conn, user)

    @staticmethod
    def _latest_overrides(conn: sqlite3.Connection, user: str) -> TasteOverrides:
        row = conn.execute("SELECT overrides_json FROM overrides WHERE user = ?"
                           " ORDER BY version DESC LIMIT 1", (user,)).fetchone()
        return (TasteOverrides.model_validate_json(row[0]) if row is not None
                else TasteOverrides(user=user))

    def edit_overrides(self, user: str, change: Callable[[TasteOverrides], TasteOverrides],
                       *, expected_version: int | None = None) -> TasteOverrides:
        """Apply ``change`` to the user's latest overrides and store the result as the next
        version, in one transaction (``change`` runs inside it: keep it quick). Raises
        :class:`OverridesConflictError` when ``expected_version`` is given and is not the
        latest; whatever ``change`` raises leaves the store as it was."""
        with self._tx() as conn:
            current = self._latest_overrides(conn, user)
            if expected_version is not None and expected_version != current.version:
                raise OverridesConflictError(
                    f"expected_version: the taste of user {user!r} is at version "
                    f"{current.version}, not {expected_version}; reload it and edit again")
            new = change(current).model_copy(update={
                "user": user, "version": current.version + 1,
                "updated_at": datetime.now(timezone.utc).replace(microsecond=0)})
            conn.execute("INSERT INTO overrides (user, version, created_at, overrides_json)"
                         " VALUES (?, ?, ?, ?)",
                         (user, new.version, _now(), new.model_dump_json()))
            conn.execute("DELETE FROM overrides WHERE user = ? AND version <= ?",
                         (user, new.version - self.overrides_kept))
        return new

    def overrides_history(self, user: str) -> list[TasteOverrides]:
        """The stored versions of the user's overrides (the last ``overrides_kept``), oldest
        first."""
        with self._lock:
            rows = self._conn.execute("SELECT overrides_json FROM overrides WHERE user = ?"
                                      " ORDER BY version", (user,)).fetchall()
        return [TasteOverrides.model_validate_json(r[0]) for r in rows]
