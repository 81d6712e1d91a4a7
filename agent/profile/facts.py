"""The deterministic half of an interest profile: everything computed from data, no LLM.

- coarse category preferences, count- and rating-weighted (:func:`category_preferences`);
- long-term vs recent category shares and their drift (:mod:`tastelens.agent.profile.drift`);
- dislikes from low ratings, relative to the user's own mean (:func:`rating_dislikes`);
- interests mined at every granularity — keyword, topic, sentiment, application — with their
  descriptors, evidence and drift (:func:`mine_interests`: :mod:`.mining`, :mod:`.topics`);
  they are the profile when the LLM is not asked or its reply is unusable, and the groups
  the LLM names when it is;
- "explore next" ideas from catalog co-occurrence and a template summary, the fallback
  when the LLM's reply is unusable (:func:`~tastelens.agent.history.explore_fallback`,
  :func:`fallback_summary`).

A history's entries, its hash and the catalog's category co-occurrence are shared with the
other stages: :mod:`tastelens.agent.history`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from tastelens.agent.history import CategoryCooccurrence, explore_fallback, history_hash
from tastelens.agent.profile.drift import long_recent_drift
from tastelens.agent.profile.mining import (
    category_groups,
    history_view,
    keyword_dislikes,
    keyword_interests,
    presence,
    sentiment_interests,
)
from tastelens.agent.profile.signals import CatalogSignals, signals_for
from tastelens.agent.profile.topics import topic_interests
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.data.dataset import Dataset
from tastelens.prompts.selection import HistoryEntry
from tastelens.schemas import (
    CategoryDrift,
    CategoryPreference,
    Interest,
    InterestProfile,
    Polarity,
    ProfileProvenance,
)


def user_mean(entries: Sequence[HistoryEntry]) -> float | None:
    rated = [e.rating for e in entries if e.rating is not None]
    return float(np.mean(rated)) if rated else None


def dislike_threshold(entries: Sequence[HistoryEntry], config: ProfileFactsConfig) -> float | None:
    """min(dislike_max_rating, mean − margin); None when nothing is rated."""
    mean = user_mean(entries)
    return None if mean is None else min(config.dislike_max_rating, mean - config.dislike_margin)


def categories_of(item_categories: Sequence[str], config: ProfileFactsConfig) -> list[str]:
    return [c for c in dict.fromkeys(item_categories) if c not in config.ignore_categories]


def category_preferences(entries: Sequence[HistoryEntry],
                         config: ProfileFactsConfig) -> list[CategoryPreference]:
    """weight_c ∝ Σ (1/k) · rating/rating_max over the events with c among their k categories.

    An unrated event weighs like the user's average rated one (1 when nothing is rated), so
    implicit-feedback histories reduce to plain counts. Weights sum to 1, strongest first.
    """
    rated = [e.rating / config.rating_max for e in entries if e.rating is not None]
    default = float(np.mean(rated)) if rated else 1.0
    weight: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    ratings: dict[str, list[float]] = defaultdict(list)
    for e in entries:
        cats = categories_of(e.item.categories, config)
        g = default if e.rating is None else max(e.rating, 0.0) / config.rating_max
        for c in cats:
            weight[c] += g / len(cats)
            count[c] += 1
            if e.rating is not None:
                ratings[c].append(e.rating)
    total = sum(weight.values())
    if total <= 0:
        return []
    prefs = [CategoryPreference(category=c, weight=round(w / total, 6), count=count[c],
                                mean_rating=round(float(np.mean(ratings[c])), 3)
                                if ratings[c] else None)
             for c, w in weight.items()]
    prefs.sort(key=lambda p: (-p.weight, p.category))
    return prefs[: config.max_categories]


def rating_dislikes(entries: Sequence[HistoryEntry],
                    config: ProfileFactsConfig) -> list[Interest]:
    """Low-rated items, then categories the user rates well below their own mean.

    Item weight = 1 − (r − r_min)/(r_max − r_min): a 0.5 is a stronger dislike than a 2.0.
    """
    threshold = dislike_threshold(entries, config)
    if threshold is None:
        return []
    span = max(config.rating_max - config.rating_min, 1e-9)
    positions = {id(e): i for i, e in enumerate(entries)}
    low = [e for e in entries if e.rating is not None and e.rating <= threshold]
    low.sort(key=lambda e: (e.rating, -positions[id(e)]))  # lowest, then newest first
    out = [Interest(label=e.item.title[:80], granularity="keyword", polarity="dislike",
                    weight=round(min(1.0, max(0.0, 1 - (e.rating - config.rating_min) / span)), 4),
                    evidence=[e.item.id], source="data")
           for e in low[: config.max_dislikes]]
    mean = user_mean(entries) or 0.0
    by_cat: dict[str, list[HistoryEntry]] = defaultdict(list)
    for e in entries:
        if e.rating is not None:
            for c in categories_of(e.item.categories, config):
                by_cat[c].append(e)
    for c, members in sorted(by_cat.items()):
        cat_mean = float(np.mean([e.rating for e in members]))
        if len(members) >= config.min_category_count and cat_mean <= mean - config.dislike_margin:
            worst = sorted(members, key=lambda e: e.rating)[:4]
            out.append(Interest(label=c[:80], granularity="topic", polarity="dislike",
                                weight=round(min(1.0, (mean - cat_mean) / span * 2), 4),
                                evidence=[e.item.id for e in worst], source="data"))
    return out


def liked_entries(entries: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Events rated at or above the user's mean; every event when nothing is rated."""
    mean = user_mean(entries)
    if mean is None:
        return list(entries)
    return [e for e in entries if e.rating is not None and e.rating >= mean]


@dataclass(frozen=True)
class MinedInterests:
    """The interests mined from one history (:mod:`.mining`, :mod:`.topics`)."""

    likes: list[Interest]
    """keyword, topic, liked sentiment, application — in that order."""
    dislikes: list[Interest]
    """Descriptors of low-rated items, disliked sentiment contrasts."""


def mine_interests(signals: CatalogSignals, entries: Sequence[HistoryEntry],
                   config: ProfileFactsConfig) -> MinedInterests:
    """Every granularity's interests of one chronological history, from data alone."""
    view = history_view(signals, entries, config, user_mean(entries),
                        dislike_threshold(entries, config))
    present = presence(signals, view, config.mining.generic_share)
    keywords = keyword_interests(signals, view, present, config)
    topics = topic_interests(signals, view, present, config)
    liked_sentiment, disliked_sentiment = sentiment_interests(
        signals, view, present, category_groups(view, config), config)
    applications = keyword_interests(signals, view, present, config, application=True)
    return MinedInterests(likes=keywords + topics + liked_sentiment + applications,
                          dislikes=keyword_dislikes(signals, view, present, config)
                          + disliked_sentiment)


def favourite_titles(entries: Sequence[HistoryEntry], n: int = 3) -> list[str]:
    """Highest-rated titles, newest first among equals (the newest when nothing is rated)."""
    liked = liked_entries(entries)
    order = sorted(range(len(liked)),
                   key=lambda i: (-(liked[i].rating or 0.0), -i))
    return [liked[i].item.title for i in order[:n]]


def fallback_summary(prefs: Sequence[CategoryPreference], drift: Sequence[CategoryDrift],
                     entries: Sequence[HistoryEntry]) -> str:
    """A factual template summary used when the LLM's reply is unusable (never LLM text)."""
    parts = []
    if prefs:
        top = [f"{p.category} ({p.weight:.0%})" for p in prefs[:3]]
        joined = top[0] if len(top) == 1 else ", ".join(top[:-1]) + " and " + top[-1]
        parts.append(f"Watches mostly {joined}.")
    rising = [d.category for d in drift if d.direction == "rising"][:2]
    falling = [d.category for d in drift if d.direction == "falling"][:2]
    if rising or falling:
        moves = ([f"more {' and '.join(rising)}"] if rising else []) + (
            [f"less {' and '.join(falling)}"] if falling else [])
        parts.append(f"Lately {', '.join(moves)}.")
    favourites = favourite_titles(entries)
    if favourites:
        parts.append(f"Favourites include {'; '.join(favourites)}.")
    return " ".join(parts)[:300].rstrip()


@dataclass(frozen=True)
class ProfileFacts:
    """Everything about one history that is computed, not asked of the model."""

    history_hash: str
    n_items: int
    categories: list[CategoryPreference]
    long_term: dict[str, float]
    recent: dict[str, float]
    drift: list[CategoryDrift]
    dislikes: list[Interest]
    data_interests: list[Interest]
    explore: list[str]
    summary: str
    mean_rating: float | None
    dislike_threshold: float | None
    ratings: dict[str, float | None] = field(repr=False)
    """Latest rating per history item id (None when unrated)."""
    titles: dict[str, str] = field(repr=False)
    catalog_categories_folded: frozenset[str] = field(repr=False)
    rating_range: tuple[float, float] | None = None
    """The catalog's rating scale (lowest, highest given), named in the prompt."""

    def contradicts(self, item_id: str, polarity: Polarity) -> bool:
        """True when the user's own rating says the opposite of ``polarity``."""
        rating = self.ratings.get(item_id)
        if rating is None or self.mean_rating is None:
            return False
        if polarity == "like":
            return self.dislike_threshold is not None and rating <= self.dislike_threshold
        return rating >= self.mean_rating

    def prompt_context(self) -> dict[str, str]:
        """Values for the user template's computed-facts placeholders."""
        top = ", ".join(f"{p.category} {p.weight:.0%}" for p in self.categories[:4]) or "unknown"
        moves = [f"{'more' if d.direction == 'rising' else 'less'} {d.category} "
                 f"({d.delta:+.0%})" for d in self.drift[:3]]
        scale = ("no rating (items are what they chose)" if self.rating_range is None else
                 f"rating from {self.rating_range[0]:g} (hated) to {self.rating_range[1]:g} "
                 "(loved)")
        return {"top_categories": top, "recent_trend": ", ".join(moves) or "steady",
                "rating_scale": scale}


def compute_facts(dataset: Dataset, entries: Sequence[HistoryEntry], config: ProfileFactsConfig,
                  cooc: CategoryCooccurrence | None = None,
                  signals: CatalogSignals | None = None) -> ProfileFacts:
    """All deterministic parts of a profile for one chronological history. ``signals``:
    the catalog's miner inputs (default: :func:`signals_for` the dataset, cached on it)."""
    cooc = cooc or CategoryCooccurrence.from_dataset(dataset, config)
    mined = mine_interests(signals or signals_for(dataset, config.mining), entries, config)
    prefs = category_preferences(entries, config)
    sequence = [categories_of(e.item.categories, config) for e in entries]
    long_term, recent, drift = long_recent_drift(sequence, config.drift)
    catalog = set(cooc.names)
    return ProfileFacts(
        history_hash=history_hash(entries), n_items=len(entries), categories=prefs,
        long_term=long_term, recent=recent, drift=drift,
        dislikes=rating_dislikes(entries, config) + mined.dislikes,
        data_interests=mined.likes,
        explore=explore_fallback(prefs, cooc),
        summary=fallback_summary(prefs, drift, entries),
        mean_rating=user_mean(entries), dislike_threshold=dislike_threshold(entries, config),
        ratings={e.item.id: e.rating for e in entries},
        titles={e.item.id: e.item.title for e in entries},
        catalog_categories_folded=frozenset(c.casefold() for c in catalog),
        rating_range=dataset.rating_range)


def facts_profile(dataset: Dataset, user: str, facts: ProfileFacts) -> InterestProfile:
    """The profile built from data facts alone — exactly what the profiler falls back to."""
    return InterestProfile(
        user=user, dataset=dataset.name, created_at=datetime.now(timezone.utc),
        history_hash=facts.history_hash, n_items=facts.n_items,
        interests=list(facts.data_interests), dislikes=list(facts.dislikes),
        categories=list(facts.categories), long_term=dict(facts.long_term),
        recent=dict(facts.recent), drift=list(facts.drift), summary=facts.summary,
        explore_next=list(facts.explore), summary_source="data", explore_source="data",
        provenance=ProfileProvenance(llm_used=False))
