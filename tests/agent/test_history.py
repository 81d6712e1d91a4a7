"""What the stages share about a history: its entries, its hash, and the catalog's category
co-occurrence with the explore rule built on it."""

import pytest

from tastelens.agent.history import (
    CategoryCooccurrence,
    EmptyHistoryError,
    explore_fallback,
    history_hash,
    load_entries,
)
from tastelens.errors import UnknownIdError
from tastelens.prompts.selection import HistoryEntry
from tastelens.schemas import CategoryPreference, Interaction, Item


def entry(i: int, cats: tuple[str, ...], rating: float | None) -> HistoryEntry:
    item = Item(id=str(i), title=f"Film {i}", categories=cats)
    return HistoryEntry(item=item, rating=rating, timestamp=1000 + i)


def test_explore_prefers_cooccurring_underrepresented_categories():
    cooc = CategoryCooccurrence([("A", "B")] * 5 + [("A", "C")] + [("D",)] * 10)
    prefs = [CategoryPreference(category="A", weight=1.0, count=3)]
    assert explore_fallback(prefs, cooc, n=3) == ["B", "C", "D"]
    well_covered = prefs + [CategoryPreference(category="B", weight=0.9, count=9)]
    assert explore_fallback(well_covered, cooc, n=1, top_k=1) == ["C"]


def test_history_hash_changes_with_any_event_field():
    base = [entry(1, ("A",), 4.0), entry(2, ("B",), 3.0)]
    h = history_hash(base)
    assert h == history_hash(list(base)) and len(h) == 64
    changed_rating = [base[0], HistoryEntry(base[1].item, 3.5, base[1].timestamp)]
    changed_time = [base[0], HistoryEntry(base[1].item, 3.0, 99)]
    assert len({h, history_hash(changed_rating), history_hash(changed_time),
                history_hash(base[:1])}) == 4


def test_unknown_user_and_empty_history_raise_named_errors(tiny_dataset):
    with pytest.raises(UnknownIdError, match="'nobody'"):
        load_entries(tiny_dataset, "nobody")
    with pytest.raises(EmptyHistoryError, match="empty history"):
        load_entries(tiny_dataset, "1", history=[])
    explicit = [Interaction(user="1", item="3", rating=4.0, timestamp=5),
                Interaction(user="1", item="2", rating=1.0, timestamp=1)]
    assert [e.item.id for e in load_entries(tiny_dataset, "1", explicit)] == ["2", "3"]
