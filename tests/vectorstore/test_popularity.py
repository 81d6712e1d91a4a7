"""The popularity priors: all-time counts with freshness, and decayed counts at a moment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tastelens.data.dataset import Dataset
from tastelens.schemas import Item
from tastelens.vectorstore.popularity import DecayedPopularity

DAY = 86_400.0


def brute_force(items: np.ndarray, times: np.ndarray, n: int, moment: float,
                half_life_days: float) -> np.ndarray:
    weights = np.where(times <= moment, np.exp2(-(moment - times) / (half_life_days * DAY)), 0)
    return np.bincount(items, weights=weights, minlength=n)


def test_decayed_counts_equal_the_sum_of_each_events_decay_at_any_moment() -> None:
    rng = np.random.default_rng(0)
    items, times = rng.integers(0, 40, 3000), rng.integers(0, 4000, 3000) * DAY
    pop = DecayedPopularity(items, times, 40, half_life_days=30.0)
    moments = [-1.0, 0.0, 17 * DAY + 5, 2000 * DAY, float(times.max()), 9000 * DAY,
               *np.sort(times)[::97]]  # event times: the checkpoints' edges included
    for moment in moments:
        assert np.allclose(pop.at(moment), brute_force(items, times, 40, moment, 30.0),
                           rtol=1e-9, atol=1e-12), moment


def test_an_event_counts_one_when_new_half_after_a_half_life_and_never_before_it_happened(
        ) -> None:
    pop = DecayedPopularity(np.array([0, 1]), np.array([10 * DAY, 20 * DAY]), 3,
                            half_life_days=10.0)
    assert pop.at(20 * DAY).tolist() == [0.5, 1.0, 0.0]
    assert pop.at(15 * DAY).tolist() == [pytest.approx(2 ** -0.5), 0.0, 0.0]
    assert pop.at(5 * DAY).tolist() == [0.0, 0.0, 0.0]


def test_from_events_leaves_out_untimed_events_and_unknown_items() -> None:
    catalog = Dataset(name="tiny", items={i: Item(id=i, title=i) for i in ("a", "b")},
                      interactions=pd.DataFrame(columns=["user", "item", "rating",
                                                         "timestamp"]))
    events = pd.DataFrame({"user": ["u"] * 4, "item": ["a", "b", "zzz", "a"],
                           "rating": [4.0] * 4, "timestamp": [0, -1, 0, np.nan]})
    pop = DecayedPopularity.from_events(events, catalog, half_life_days=1.0)
    assert pop.at(0.0).tolist() == [1.0, 0.0]


def test_a_half_life_must_be_positive() -> None:
    with pytest.raises(ValueError, match="half_life_days"):
        DecayedPopularity(np.array([0]), np.array([0.0]), 1, half_life_days=0.0)
