"""What a person says about their taste, merged into a profile (agent/profile/stated.py)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tastelens.agent.profile.stated import with_stated
from tastelens.schemas import CategoryPreference, Interest, InterestProfile


def base(**kw) -> InterestProfile:  # noqa: ANN003
    return InterestProfile(user="anonymous", created_at=datetime(2024, 1, 1, tzinfo=timezone.utc),
                           history_hash="h", n_items=2, **kw)


def test_stated_categories_alone_share_equally() -> None:
    out = with_stated(base(), ["Comedy", "Horror"])
    assert [(c.category, c.weight) for c in out.categories] == [("Comedy", 0.5),
                                                                ("Horror", 0.5)]
    assert out.long_term == out.recent == {"Comedy": 0.5, "Horror": 0.5}


def test_stated_and_watched_categories_count_alike() -> None:
    watched = base(categories=[CategoryPreference(category="Drama", weight=1.0, count=2)],
                   long_term={"Drama": 1.0}, recent={"Drama": 1.0})
    out = with_stated(watched, ["Comedy"])
    assert {c.category: c.weight for c in out.categories} == pytest.approx(
        {"Comedy": 0.5, "Drama": 0.5})
    assert out.long_term == pytest.approx({"Comedy": 0.5, "Drama": 0.5})
    assert next(c for c in out.categories if c.category == "Drama").count == 2


def test_stated_likes_and_dislikes_come_first() -> None:
    old = Interest(label="heist", granularity="keyword", weight=0.5, source="data")
    gone = Interest(label="Titanic (1997)", granularity="topic", weight=1.0,
                    polarity="dislike", evidence=["9"], source="user")
    out = with_stated(base(interests=[old]), likes=["90s Disney musicals", "heist"],
                      dislikes=[gone])
    assert [(i.label, i.source) for i in out.interests] == [
        ("90s Disney musicals", "user"), ("heist", "user")]  # a restated like is not doubled
    assert out.dislikes == [gone]
    assert with_stated(base()) == base()  # nothing stated: unchanged
