"""Per-user access tokens for the HTTP API: one user's data, nobody else's.

The operator issues a token for one user id of a dataset (``tastelens token issue --user 1``)
and hands it to that user; the API then lets the token read and edit that user's profile and
taste, ask for their recommendations and chat as them (see :mod:`tastelens.api.access`).

- A token is ``tlu_`` + 32 random bytes (URL-safe base64). It is shown once, when issued; the
  store keeps only its SHA-256. A fast hash is enough here: 256 random bits cannot be guessed
  from a dictionary, so a slow password hash would only slow every request down.
- Each token has a short public id (``tok_…``) to list and revoke it by; revoking is at once
  (the API reads the store on every request that sends a token) and kept as a row with its
  time, so ``list`` shows what was revoked when.
- One SQLite file per dataset, beside its profile store: ``<cache_dir>/tokens/<dataset>.sqlite``
  (user ids are the dataset's own). Writes are transactions in WAL mode, so a command issuing
  or revoking while the API runs is safe.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tastelens.errors import UnknownIdError

PREFIX = "tlu_"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    id          TEXT PRIMARY KEY,
    user        TEXT NOT NULL,
    sha256      TEXT NOT NULL UNIQUE,
    note        TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX IF NOT EXISTS tokens_user ON tokens (user);
"""


def default_tokens_path(cache_dir: Path, dataset_name: str) -> Path:
    """Where the tokens of a dataset's users live."""
    return cache_dir / "tokens" / f"{dataset_name}.sqlite"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def looks_like_token(value: str) -> bool:
    """True for a string of the user-token form (not for the operator key)."""
    return value.startswith(PREFIX) and len(value) > len(PREFIX) + 20


@dataclass(frozen=True)
class UserToken:
    """What the store knows of one token (never the token itself)."""

    id: str
    user: str
    note: str
    created_at: str
    revoked_at: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class TokenStore:
    """Thread-safe access to one token database."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        if new:
            os.chmod(self.path, 0o600)  # hashes only, but nobody else needs to read them
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> TokenStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def issue(self, user: str, note: str = "") -> tuple[UserToken, str]:
        """A new token for ``user``: (its record, the token itself — shown this once)."""
        if not user.strip():
            raise ValueError("a token needs a user id")
        token = PREFIX + secrets.token_urlsafe(32)
        record = UserToken(id="tok_" + secrets.token_hex(6), user=user, note=note[:200],
                           created_at=_now(), revoked_at=None)
        with self._lock:
            self._conn.execute(
                "INSERT INTO tokens (id, user, sha256, note, created_at) VALUES (?, ?, ?, ?, ?)",
                (record.id, record.user, token_hash(token), record.note, record.created_at))
        return record, token

    def user_of(self, token: str) -> str | None:
        """The user an active ``token`` is for; None for an unknown or revoked one."""
        with self._lock:
            row = self._conn.execute(
                "SELECT user FROM tokens WHERE sha256 = ? AND revoked_at IS NULL",
                (token_hash(token),)).fetchone()
        return row[0] if row is not None else None

    def revoke(self, token_id: str) -> UserToken:
        """Revoke one token by its id; revoking a revoked one changes nothing."""
        with self._lock:
            self._conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at "
                               "IS NULL", (_now(), token_id))
            row = self._conn.execute(f"SELECT {_COLUMNS} FROM tokens WHERE id = ?",
                                     (token_id,)).fetchone()
        if row is None:
            raise UnknownIdError(f"no token with id {token_id!r} in {self.path}; `tastelens "
                                 "token list` shows the ids")
        return UserToken(*row)

    def revoke_user(self, user: str) -> int:
        """Revoke every active token of ``user``; returns how many."""
        with self._lock:
            cursor = self._conn.execute("UPDATE tokens SET revoked_at = ? WHERE user = ? AND "
                                        "revoked_at IS NULL", (_now(), user))
        return cursor.rowcount

    def tokens(self, user: str | None = None) -> list[UserToken]:
        """Every token (of ``user``), oldest first."""
        where, args = ("WHERE user = ?", (user,)) if user is not None else ("", ())
        with self._lock:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM tokens {where} "
                                      "ORDER BY rowid", args).fetchall()
        return [UserToken(*row) for row in rows]


_COLUMNS = "id, user, note, created_at, revoked_at"
