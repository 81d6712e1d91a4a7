import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from tastelens.errors import UnknownIdError
from tastelens.profile_store import ProfileKey, ProfileStore


def key(user: str, h: str = "h1", model: str = "m") -> ProfileKey:
    return ProfileKey(user=user, history_hash=h, model=model, adapter="", prompt_version="p1")


def test_put_latest_and_versions(tmp_path):
    with ProfileStore(tmp_path / "p.sqlite") as store:
        assert store.latest("1") is None
        assert store.put(key("1"), '{"a": 1}') == 1
        assert store.put(key("1", h="h2"), '{"a": 2}', fallback=True) == 2
        latest = store.get("1")
        assert latest.version == 2 and latest.fallback and latest.profile_json == '{"a": 2}'
        assert store.count() == 1


def test_is_current_detects_changed_inputs(tmp_path):
    with ProfileStore(tmp_path / "p.sqlite") as store:
        store.put(key("1"), "{}")
        assert store.is_current(key("1"))
        assert not store.is_current(key("1", h="changed"))
        assert not store.is_current(key("1", model="other"))
        assert not store.is_current(key("2"))


def test_get_unknown_user_names_it(tmp_path):
    with ProfileStore(tmp_path / "p.sqlite") as store, pytest.raises(UnknownIdError, match="'42'"):
        store.get("42")


def test_failures_counted_and_cleared_on_success(tmp_path):
    with ProfileStore(tmp_path / "p.sqlite") as store:
        assert store.record_failure("7", "timeout") == 1
        assert store.record_failure("7", "invalid json") == 2
        assert store.failures() == {"7": (2, "invalid json")}
        store.put(key("7"), "{}", fallback=True)
        assert store.failures() == {"7": (2, "invalid json")}
        store.put(key("7"), "{}")
        assert store.failures() == {}


def _writer(path: str) -> None:
    store = ProfileStore(Path(path))
    i = 0
    while True:
        store.put(key(str(i)), '{"payload": "' + "x" * 5000 + '"}')
        i += 1


def test_killed_writer_leaves_only_complete_rows(tmp_path):
    path = tmp_path / "p.sqlite"
    ProfileStore(path).close()
    proc = multiprocessing.get_context("spawn").Process(target=_writer, args=(str(path),))
    proc.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        with sqlite3.connect(path) as conn:
            if conn.execute("SELECT COUNT(*) FROM profiles").fetchone()[0] >= 20:
                break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    with ProfileStore(path) as store:
        users = store.users()
        assert len(users) >= 20
        for user in users:
            assert store.get(user).profile_json.endswith('"}')
        with sqlite3.connect(path) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
