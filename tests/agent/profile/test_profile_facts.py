"""Deterministic profile parts: categories, dislikes, data interests, the fallback summary
(a history's entries and hash, and co-occurrence: tests/agent/test_history.py)."""

import dataclasses

import pytest

from tastelens.agent.history import load_entries
from tastelens.agent.profile.facts import (
    category_preferences,
    compute_facts,
    dislike_threshold,
    fallback_summary,
    rating_dislikes,
)
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.prompts.selection import HistoryEntry
from tastelens.schemas import CategoryPreference, Item

CFG = ProfileFactsConfig()


def entry(i: int, cats: tuple[str, ...], rating: float | None, year: int | None = None,
          tags: tuple[str, ...] = ()) -> HistoryEntry:
    item = Item(id=str(i), title=f"Film {i}", year=year, categories=cats, tags=tags)
    return HistoryEntry(item=item, rating=rating, timestamp=1000 + i)


def test_category_weights_count_and_rating_weighted_and_sum_to_one(tiny_dataset):
    prefs = category_preferences([entry(1, ("A",), 5.0), entry(2, ("A", "B"), 2.5)], CFG)
    # A: 5/5 + (2.5/5)/2 = 1.25, B: 0.25 -> 0.8333 / 0.1667
    assert [(p.category, p.count) for p in prefs] == [("A", 2), ("B", 1)]
    assert prefs[0].weight == pytest.approx(1.25 / 1.5, abs=1e-6)
    assert prefs[0].mean_rating == pytest.approx(3.75)
    for user in tiny_dataset.user_ids[:10]:
        prefs = category_preferences(load_entries(tiny_dataset, user), CFG)
        assert sum(p.weight for p in prefs) == pytest.approx(1.0, abs=1e-5)
        assert prefs == sorted(prefs, key=lambda p: -p.weight)


def test_unrated_history_reduces_to_counts_and_placeholder_category_is_ignored():
    prefs = category_preferences([entry(1, ("A",), None), entry(2, ("A",), None),
                                  entry(3, ("B", "(no genres listed)"), None)], CFG)
    assert {p.category: p.weight for p in prefs} == pytest.approx({"A": 2 / 3, "B": 1 / 3})
    assert all(p.mean_rating is None for p in prefs)


def test_dislikes_are_low_ratings_relative_to_the_users_mean():
    ratings = [5.0, 4.0, 4.0, 1.0, 2.0, 3.5]  # mean 3.25 -> threshold min(2.0, 2.25) = 2.0
    entries = [entry(i, ("A",), r) for i, r in enumerate(ratings)]
    items = [d for d in rating_dislikes(entries, CFG) if d.granularity == "keyword"]
    assert [d.evidence for d in items] == [["3"], ["4"]]  # lowest first
    assert all(d.polarity == "dislike" and d.source == "data" for d in items)
    assert items[0].weight > items[1].weight
    harsh = [entry(i, ("A",), r) for i, r in enumerate([2.0, 2.0, 2.5, 1.0, 3.0])]
    assert dislike_threshold(harsh, CFG) == pytest.approx(1.1)  # mean 2.1 - margin 1.0
    assert [d.evidence for d in rating_dislikes(harsh, CFG)] == [["3"]]
    assert rating_dislikes([entry(1, ("A",), None)], CFG) == []


def test_a_category_rated_far_below_the_mean_becomes_a_topic_dislike():
    entries = ([entry(i, ("Comedy",), 5.0) for i in range(6)]
               + [entry(10 + i, ("Horror",), r) for i, r in enumerate([2.5, 3.0, 2.5])])
    topics = [d for d in rating_dislikes(entries, CFG) if d.granularity == "topic"]
    assert [t.label for t in topics] == ["Horror"]
    assert set(topics[0].evidence) <= {"10", "11", "12"}


def test_compute_facts_carries_the_mined_interests(tiny_dataset):
    # tiny_dataset's tags repeat the genre: no descriptors, so the data interests are the
    # liked items' topic clusters (tests/agent/profile/test_mining.py covers each kind).
    facts = compute_facts(tiny_dataset, load_entries(tiny_dataset, "1"), CFG)
    assert facts.data_interests and {i.granularity for i in facts.data_interests} == {"topic"}
    assert all(i.source == "data" and i.evidence for i in facts.data_interests)


def test_compute_facts_on_tiny_user(tiny_dataset):
    entries = load_entries(tiny_dataset, "1")
    facts = compute_facts(tiny_dataset, entries, CFG)
    assert facts.n_items == len(entries) == 10
    assert facts.categories[0].category == "Action"  # user 1 likes Action (4.5 vs 2.0)
    assert "Action" not in facts.explore and len(facts.explore) == 3
    assert facts.summary.startswith("Watches mostly Action")
    assert facts.contradicts(entries[0].item.id, "like") == (entries[0].rating <= 2.0)
    ctx = facts.prompt_context()
    assert set(ctx) == {"top_categories", "recent_trend", "rating_scale"}
    assert "Action" in ctx["top_categories"]
    # the catalog's own scale, whatever it is (ml-latest-small: 0.5 to 5)
    lo, hi = tiny_dataset.rating_range
    assert ctx["rating_scale"] == f"rating from {lo:g} (hated) to {hi:g} (loved)"
    unrated = dataclasses.replace(facts, rating_range=None)
    assert unrated.prompt_context()["rating_scale"].startswith("no rating")


def test_fallback_summary_is_short_and_factual():
    prefs = [CategoryPreference(category="Drama", weight=0.5, count=5)]
    text = fallback_summary(prefs, [], [entry(1, ("Drama",), 5.0), entry(2, ("Drama",), 1.0)])
    assert text == "Watches mostly Drama (50%). Favourites include Film 1."
    assert len(fallback_summary(prefs * 3, [], [entry(i, ("D",), 5.0) for i in range(50)])) <= 300
