"""Choosing the most informative part of a long history for a prompt with a token budget.

Truncating a long history to its newest items loses the films a user loved or hated years
ago; keeping its oldest loses the drift. Instead items are chosen greedily by a score that
mixes three signals (weights in :class:`SelectionConfig`):

    score(i) = w_recency · 0.5^((n−1−pos_i) / half_life)          newer is better
             + w_strength · min(1, |r_i − μ| / (½·(r_max − r_min))) · f_i
                                                  far from the user's mean, at either end
                                                  (f_i = low_rating_factor below μ, else 1)
             + w_diversity · mean_{c ∈ cats(i)} 1 / (1 + chosen_c)   categories not yet shown

where pos_i is the item's position in the chronological history (0 = oldest), μ the user's
mean rating (strength is 0 for unrated items) and chosen_c the number of already chosen
items with category c. The diversity term changes as items are chosen, so the selection is
greedy: take the best-scoring item that still fits the budget, update, repeat. The chosen
items are then shown in chronological order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from tastelens.schemas import Item

_MAX_MISSES = 16


@dataclass(frozen=True)
class HistoryEntry:
    """One event of a user's history with its catalog item (what prompts and facts read)."""

    item: Item
    rating: float | None = None
    timestamp: int | None = None


class SelectionConfig(BaseModel):
    """Weights of the informative-item score (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    half_life: float = Field(default=20.0, gt=0.0,
                             description="Recency half-life, in events from the newest.")
    weight_recency: float = Field(default=1.0, ge=0.0)
    weight_strength: float = Field(default=1.0, ge=0.0,
                                   description="Strongly rated items, loved or hated.")
    weight_diversity: float = Field(default=0.5, ge=0.0,
                                    description="Items of categories not yet chosen.")
    low_rating_factor: float = Field(
        default=0.5, ge=0.0, le=1.0,
        description="Strength of items rated below the user's mean, relative to loved ones: "
                    "a profile is mostly likes, and its liked interests need liked items to "
                    "cite.")
    rating_min: float = Field(default=0.5, description="Lowest rating of the scale.")
    rating_max: float = Field(default=5.0, description="Highest rating of the scale.")


def static_scores(entries: Sequence[HistoryEntry], config: SelectionConfig) -> np.ndarray:
    """Recency + strength part of the score (the part that does not change while choosing)."""
    n = len(entries)
    positions = np.arange(n, dtype=np.float64)
    recency = 0.5 ** ((n - 1 - positions) / config.half_life)
    ratings = np.array([np.nan if e.rating is None else e.rating for e in entries], dtype=float)
    strength = np.zeros(n)
    rated = ~np.isnan(ratings)
    if rated.any():
        mean = float(ratings[rated].mean())
        half_range = max((config.rating_max - config.rating_min) / 2.0, 1e-9)
        strength[rated] = np.minimum(1.0, np.abs(ratings[rated] - mean) / half_range)
        strength[rated & (ratings < mean)] *= config.low_rating_factor
    return config.weight_recency * recency + config.weight_strength * strength


def select_informative(
    entries: Sequence[HistoryEntry],
    cost: Callable[[int], int],
    budget: int,
    config: SelectionConfig,
    max_items: int | None = None,
) -> list[int]:
    """Positions of the chosen entries, ascending (chronological).

    ``cost(i)`` is the token cost of showing entry ``i``; it is only asked for entries the
    greedy pass considers, so a slow tokenizer is not run over a 2,000-item history.
    """
    n = len(entries)
    limit = n if max_items is None else min(n, max_items)
    if n == 0 or limit == 0 or budget <= 0:
        return []
    base = static_scores(entries, config)
    categories = sorted({c for e in entries for c in e.item.categories})
    col = {c: j for j, c in enumerate(categories)}
    member = np.zeros((n, max(1, len(categories))))
    for i, e in enumerate(entries):
        for c in set(e.item.categories):
            member[i, col[c]] = 1.0
    n_cats = member.sum(axis=1)
    chosen_per_cat = np.zeros(member.shape[1])
    available = np.ones(n, dtype=bool)
    chosen: list[int] = []
    spent = 0
    misses = 0
    # Stop after a run of items that no longer fit: the budget is then as good as full, and
    # scanning a 2,000-item history to the end would tokenize every item for nothing.
    while len(chosen) < limit and available.any() and misses < _MAX_MISSES:
        novelty = member @ (1.0 / (1.0 + chosen_per_cat))
        # Items without categories count as fully novel: nothing shown says the same thing.
        novelty = np.where(n_cats > 0, novelty / np.maximum(n_cats, 1.0), 1.0)
        score = np.where(available, base + config.weight_diversity * novelty, -np.inf)
        best = int(np.argmax(score))  # ties: the oldest position wins, deterministic
        available[best] = False
        price = cost(best)
        if spent + price > budget:
            misses += 1
            continue  # too long for what is left; a shorter item may still fit
        misses = 0
        spent += price
        chosen.append(best)
        chosen_per_cat += member[best]
    return sorted(chosen)
