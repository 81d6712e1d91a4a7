"""Per-user tokens: issued once, stored hashed, checked by hash, revocable at once."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest

from tastelens.errors import UnknownIdError
from tastelens.user_tokens import (
    TokenStore,
    default_tokens_path,
    looks_like_token,
    token_hash,
)


def test_a_token_names_its_user_and_only_its_hash_is_stored(tmp_path: Path) -> None:
    path = default_tokens_path(tmp_path, "ml-tiny")
    assert path == tmp_path / "tokens" / "ml-tiny.sqlite"
    with TokenStore(path) as store:
        record, token = store.issue("1", note="alice's phone")
        _, other = store.issue("2")
        assert looks_like_token(token) and token != other and len(token) > 40
        assert store.user_of(token) == "1" and store.user_of(other) == "2"
        assert store.user_of(token + "x") is None and store.user_of("tlu_nope") is None
        assert [(t.id, t.user, t.note, t.active) for t in store.tokens("1")] == [
            (record.id, "1", "alice's phone", True)]
    raw = path.read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("tokens/*-wal"))
    assert token.encode() not in raw and other.encode() not in raw
    with sqlite3.connect(path) as conn:
        assert {r[0] for r in conn.execute("SELECT sha256 FROM tokens")} == {
            token_hash(token), token_hash(other)}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_revoking_is_at_once_and_is_kept(tmp_path: Path) -> None:
    with TokenStore(tmp_path / "t.sqlite") as store, TokenStore(tmp_path / "t.sqlite") as api:
        record, token = store.issue("1")
        _, second = store.issue("1")
        _, keep = store.issue("2")
        assert api.user_of(token) == "1"
        revoked = store.revoke(record.id)
        assert revoked.revoked_at is not None and not revoked.active
        assert api.user_of(token) is None  # another connection (the API) sees it at once
        assert store.revoke(record.id).revoked_at == revoked.revoked_at  # idempotent
        assert store.revoke_user("1") == 1 and api.user_of(second) is None
        assert api.user_of(keep) == "2"
        assert [t.active for t in store.tokens()] == [False, False, True]
        with pytest.raises(UnknownIdError, match="no token with id 'tok_nope'"):
            store.revoke("tok_nope")


def test_the_operator_key_does_not_look_like_a_token() -> None:
    assert not looks_like_token("a-long-operator-key-0123456789")
    assert not looks_like_token("tlu_short")
