"""Interest mining at each granularity on small hand-built catalogs, with and without
descriptors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastelens.agent.history import load_entries
from tastelens.agent.profile.facts import mine_interests
from tastelens.agent.profile.mining import log_odds_z
from tastelens.agent.profile.signals import build_signals, is_application
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.data.dataset import Dataset
from tastelens.schemas import Item

CFG = ProfileFactsConfig()


def catalog(with_descriptors: bool = True) -> dict[str, Item]:
    spec = [  # (ids, category, keywords cycling over items)
        (range(1, 11), "Crime", [("heist", "bank robbery"), ("heist", "bank robbery", "vault")]),
        (range(11, 17), "Comedy", [("slapstick",), ("slapstick", "pratfall")]),
        (range(17, 23), "Comedy", [("dark comedy",), ("dark comedy", "satire")]),
        (range(23, 33), "Sci-Fi", [("space", "alien"), ("space", "spaceship")]),
        (range(33, 37), "Family", [("christmas", "snow")]),
        (range(37, 80), "Drama", [("love",), ("war",), ("family",), ("lawyer",), ("doctor",)]),
    ]
    items = {}
    for ids, category, keywords in spec:
        for k, i in enumerate(ids):
            items[str(i)] = Item(id=str(i), title=f"{category} film {i}", year=1990 + i % 20,
                                 categories=(category,),
                                 keywords=keywords[k % len(keywords)] if with_descriptors
                                 else ())
    return items


def dataset(with_descriptors: bool = True) -> Dataset:
    rng = np.random.default_rng(0)
    rows = []
    # the crowd: broad viewing, so a descriptor's background rate is its catalog share
    for u in range(40):
        for t, i in enumerate(rng.choice(79, size=25, replace=False) + 1):
            rows.append((f"c{u}", str(i), 3.5, 1000 + t))
    likes = ([(str(i), 5.0) for i in range(1, 11)] + [(str(i), 4.5) for i in range(23, 33)]
             + [(str(i), 1.0) for i in range(11, 17)] + [(str(i), 5.0) for i in range(17, 23)]
             + [(str(i), 5.0) for i in range(33, 37)] + [("40", 3.0), ("45", 3.0)])
    rows += [("u", i, r, 5000 + t) for t, (i, r) in enumerate(likes)]
    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"]).astype(
        {"rating": "float64", "timestamp": "int64"})
    return Dataset(name="mining", items=catalog(with_descriptors), interactions=frame)


def mined(ds: Dataset):
    return mine_interests(build_signals(ds, CFG.mining), load_entries(ds, "u"), CFG)


def by(interests, granularity):
    return [i for i in interests if i.granularity == granularity]


def test_keyword_interests_are_over_represented_descriptors_with_evidence() -> None:
    out = mined(dataset())
    keywords = by(out.likes, "keyword")
    labels = [k.label for k in keywords]
    assert labels[0] in ("heist", "bank robbery", "space", "dark comedy")
    heist = [k for k in keywords if "heist" in k.descriptors or "bank robbery" in k.descriptors]
    # 'heist' and 'bank robbery' sit on the same films: one interest holds both
    assert len(heist) == 1 and {"heist", "bank robbery"} <= set(heist[0].descriptors)
    heist = heist[0]
    assert set(heist.evidence) <= {str(i) for i in range(1, 11)} and len(heist.evidence) == 4
    assert "slapstick" not in labels and "love" not in labels  # disliked / not over-represented
    assert all(0 < k.weight <= 1 and k.trend is not None and k.source == "data"
               for k in keywords)
    assert keywords[0].weight == 1.0


def test_topics_are_clusters_named_by_distinguishing_descriptors() -> None:
    topics = by(mined(dataset()).likes, "topic")
    assert len(topics) >= 2
    labels = " | ".join(t.label for t in topics)
    crime = next(t for t in topics if t.label.startswith("Crime: "))
    assert "heist" in crime.label and "Sci-Fi: space" in labels
    for t in topics:
        ids = {int(e) for e in t.evidence}
        assert len(ids) >= 3 and t.descriptors and t.label.split(":")[0] in (
            "Crime", "Sci-Fi", "Comedy", "Family", "Drama")
    assert max(t.weight for t in topics) == 1.0


def test_sentiment_contrasts_inside_a_category() -> None:
    out = mined(dataset())
    liked = {i.label for i in by(out.likes, "sentiment")}
    disliked = {i.label for i in by(out.dislikes, "sentiment")}
    assert "Comedy: dark comedy" in liked and "Comedy: slapstick" in disliked
    slap = next(i for i in out.dislikes if i.label == "Comedy: slapstick")
    assert set(slap.evidence) <= {str(i) for i in range(11, 17)}


def test_a_contrast_everybody_shares_is_not_a_persons_sentiment() -> None:
    ds = dataset()
    mine = ds.interactions[ds.interactions["user"] == "u"]
    u = mine.set_index("item")["rating"]
    # Many more people rate each of the user's items exactly as the user does.
    others = pd.DataFrame([(f"o{k}", item, rating, 1000 + t) for k in range(300)
                           for t, (item, rating) in enumerate(u.items())],
                          columns=["user", "item", "rating", "timestamp"])
    frame = pd.concat([ds.interactions, others], ignore_index=True)
    same = Dataset(name="same", items=ds.items, interactions=frame)
    out = mined(same)
    assert not by(out.likes, "sentiment") and not by(out.dislikes, "sentiment")
    assert "Comedy: dark comedy" in {i.label for i in by(mined(ds).likes, "sentiment")}


def test_application_only_from_occasion_descriptors_the_catalog_has() -> None:
    out = mined(dataset())
    assert [i.label for i in by(out.likes, "application")] == ["christmas"]
    assert is_application("for lab use") and is_application("date night")
    assert not is_application("heist") and not is_application("bank robbery")
    assert is_application("family") and is_application("road trip")
    # An occasion word inside a longer descriptor may name a theme, not a use.
    for theme in ("space travel", "time travel", "dysfunctional family", "blind date"):
        assert not is_application(theme), theme
    assert is_application("christmas party") and is_application("family movie night")


def test_keyword_dislikes_from_low_ratings() -> None:
    dislikes = by(mined(dataset()).dislikes, "keyword")
    assert dislikes and dislikes[0].label == "slapstick" and dislikes[0].polarity == "dislike"


def test_catalog_without_descriptors_degrades_to_category_topics() -> None:
    out = mined(dataset(with_descriptors=False))
    assert not by(out.likes, "keyword") and not by(out.likes, "application")
    assert not by(out.likes, "sentiment") and not out.dislikes
    topics = by(out.likes, "topic")
    assert topics and all(t.descriptors == [] for t in topics)
    assert any(t.label.startswith(("Crime", "Sci-Fi")) for t in topics)


def test_catalog_without_categories_or_descriptors() -> None:
    ds = dataset(with_descriptors=False)
    bare = {k: it.model_copy(update={"categories": (), "year": None})
            for k, it in ds.items.items()}
    out = mined(Dataset(name="bare", items=bare, interactions=ds.interactions))
    assert all(i.granularity == "topic" for i in out.likes) and not out.dislikes


def test_unrated_history_counts_every_item_as_liked() -> None:
    ds = dataset()
    frame = ds.interactions.assign(rating=np.nan)
    implicit = Dataset(name="implicit", items=ds.items, interactions=frame)
    config = CFG.model_copy(update={"mining": CFG.mining.model_copy(update={"min_z": 1.0})})
    out = mine_interests(build_signals(implicit, config.mining), load_entries(implicit, "u"),
                         config)
    # no ratings: every item is liked (a quarter are heist films), nothing is disliked
    assert "heist" in {d for k in by(out.likes, "keyword") for d in k.descriptors}
    assert by(out.likes, "topic") and not out.dislikes


@pytest.mark.parametrize("y, n, p", [(5.0, 10.0, 0.1), (2.0, 10.0, 0.05)])
def test_log_odds_rises_with_support_and_is_zero_at_the_background_rate(y, n, p) -> None:
    z = log_odds_z(np.array([y, y + 2, n * p]), n, np.full(3, p), prior=20.0)
    assert z[1] > z[0] > 0 and abs(z[2]) < 1e-9
