"""The user's own taste edits: what each edit does, the errors that name the label, and the
profile store's versioned, atomic ``overrides`` table (kept across profile rebuilds)."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from tastelens.errors import InvalidRequestError
from tastelens.profile_store import OverridesConflictError, ProfileKey, ProfileStore
from tastelens.schemas import Interest
from tastelens.taste import TasteEdit, TasteOverrides

CATEGORIES = ["Comedy", "Horror", "Sci-Fi"]
INTERESTS = [Interest(label="heist", granularity="keyword", weight=1.0, evidence=["1"]),
             Interest(label="1990s Comedy", granularity="topic", weight=0.5, evidence=["2"]),
             Interest(label="Bad Movie (1999)", granularity="keyword", weight=0.9,
                      polarity="dislike")]


def edit(overrides: TasteOverrides, action: str, label: str) -> TasteOverrides:
    return overrides.edited(TasteEdit(action=action, label=label), INTERESTS, CATEGORIES)


def test_each_edit_and_its_undo() -> None:
    o = TasteOverrides(user="1")
    o = edit(o, "remove", "HEIST")  # labels match case-insensitively, stored as shown
    assert o.removed == ["heist"]
    o = edit(o, "restore", "heist")
    assert o.removed == []
    o = edit(o, "pin", "1990s comedy")
    assert [p.label for p in o.pinned] == ["1990s Comedy"] and o.pinned[0].evidence == ["2"]
    o = edit(o, "dislike", "  horror ")  # a catalog category is spelled as the catalog does
    o = edit(o, "dislike", "slow   dramas")
    assert o.dislikes == ["Horror", "slow dramas"]
    assert edit(o, "dislike", "HORROR").dislikes == o.dislikes  # no duplicates
    o = edit(o, "undislike", "Horror")
    o = edit(o, "unpin", "1990s Comedy")
    assert o.dislikes == ["slow dramas"] and not o.pinned and not o.removed


def test_removing_a_pinned_interest_unpins_it_and_pinning_restores() -> None:
    o = edit(edit(TasteOverrides(user="1"), "pin", "heist"), "remove", "heist")
    assert o.removed == ["heist"] and not o.pinned
    assert edit(o, "pin", "heist").removed == []


@pytest.mark.parametrize(("action", "label", "says"), [
    ("remove", "space", "'space' is not one of the user's interests"),
    ("pin", "Bad Movie (1999)", "is not one of the user's interests"),  # a dislike, not a like
    ("restore", "heist", "not among the removed interests"),
    ("unpin", "heist", "'heist' is not pinned"),
    ("undislike", "Horror", "not among the dislikes you added"),
])
def test_an_edit_that_cannot_apply_names_the_label(action: str, label: str, says: str) -> None:
    with pytest.raises(InvalidRequestError, match="^label: ") as caught:
        edit(TasteOverrides(user="1"), action, label)
    assert says in str(caught.value)
    if action == "remove":
        assert "'heist', '1990s Comedy'" in str(caught.value)  # what it could have been


@pytest.mark.parametrize("body", [
    {"action": "remove", "label": ""}, {"action": "remove", "label": "   "},
    {"action": "remove", "label": "x" * 81}, {"action": "delete", "label": "heist"},
    {"action": "remove", "label": "\ud800"}, {"action": "remove", "label": "a", "x": 1},
    {"action": "remove", "label": "a", "expected_version": -1}])
def test_a_malformed_edit_is_refused(body: dict) -> None:
    with pytest.raises(ValidationError):
        TasteEdit.model_validate(body)


def test_the_store_versions_every_edit_and_keeps_them_across_rebuilds(tmp_path) -> None:  # noqa: ANN001
    with ProfileStore(tmp_path / "p.sqlite") as store:
        assert store.overrides("1") == TasteOverrides(user="1")  # version 0: none yet
        store.put(ProfileKey("1", "h1", "m"), "{}")
        first = store.edit_overrides("1", lambda o: edit(o, "remove", "heist"))
        second = store.edit_overrides("1", lambda o: edit(o, "dislike", "horror"),
                                      expected_version=1)
        assert (first.version, second.version) == (1, 2) and second.updated_at is not None
        store.put(ProfileKey("1", "h2", "m"), "{}")  # a rebuilt profile: a new version
    with ProfileStore(tmp_path / "p.sqlite") as store:  # and a restart
        kept = store.overrides("1")
        assert kept.removed == ["heist"] and kept.dislikes == ["Horror"] and kept.version == 2
        assert [o.version for o in store.overrides_history("1")] == [1, 2]
        assert store.overrides("2").version == 0


def test_a_stale_or_failing_edit_changes_nothing(tmp_path) -> None:  # noqa: ANN001
    with ProfileStore(tmp_path / "p.sqlite") as store:
        store.edit_overrides("1", lambda o: edit(o, "remove", "heist"))
        with pytest.raises(OverridesConflictError, match="at version 1, not 0"):
            store.edit_overrides("1", lambda o: edit(o, "dislike", "x"), expected_version=0)
        with pytest.raises(InvalidRequestError):
            store.edit_overrides("1", lambda o: edit(o, "unpin", "heist"))
        assert [o.version for o in store.overrides_history("1")] == [1]


def test_concurrent_edits_are_never_lost(tmp_path) -> None:  # noqa: ANN001
    with ProfileStore(tmp_path / "p.sqlite") as store:
        def writer(w: int) -> None:
            for i in range(10):
                store.edit_overrides("1", lambda o, i=i: edit(o, "dislike", f"theme {w}-{i}"))

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        final = store.overrides("1")
    assert final.version == 40 and len(final.dislikes) == 40


def test_old_versions_are_pruned_in_the_edit_transaction(tmp_path) -> None:  # noqa: ANN001
    with ProfileStore(tmp_path / "p.sqlite", overrides_kept=5) as store:
        for i in range(30):  # toggle one interest back and forth, as a page user can
            store.edit_overrides("1", lambda o, i=i: edit(o, "dislike" if i % 2 == 0
                                                          else "undislike", "horror"))
        store.edit_overrides("2", lambda o: edit(o, "dislike", "horror"))
        kept = store.overrides_history("1")
        assert [o.version for o in kept] == [26, 27, 28, 29, 30]
        assert kept[-1].dislikes == [] and store.overrides("1").version == 30
        store.edit_overrides("1", lambda o: edit(o, "dislike", "war"), expected_version=30)
        assert store.overrides("1").version == 31 and len(store.overrides_history("1")) == 5
        assert [o.version for o in store.overrides_history("2")] == [1]  # per user
    import sqlite3

    with sqlite3.connect(tmp_path / "p.sqlite") as conn:
        assert conn.execute("SELECT COUNT(*) FROM overrides").fetchone()[0] == 6
    with ProfileStore(tmp_path / "q.sqlite") as store:  # the default keeps 20
        for i in range(25):
            store.edit_overrides("1", lambda o, i=i: edit(o, "dislike", f"theme {i}"))
        assert len(store.overrides_history("1")) == 20
