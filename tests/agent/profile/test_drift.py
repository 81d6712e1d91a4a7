"""Drift: w(t+1) = α·w(t) + β·x(t), shares normalised, drift = recent − long-term."""

import numpy as np
import pytest

from tastelens.agent.profile.drift import (
    category_indicators,
    decayed_shares,
    decayed_state,
    long_recent_drift,
)
from tastelens.config.pipeline import DriftConfig, DriftSettings

SEQUENCE = [["A"], ["A"], ["B"], ["A", "B"]]


def test_indicators_split_multi_category_items():
    names, x = category_indicators(SEQUENCE)
    assert names == ["A", "B"]
    np.testing.assert_allclose(x, [[1, 0], [1, 0], [0, 1], [0.5, 0.5]])


def test_closed_form_matches_the_recursion_for_any_beta():
    names, x = category_indicators(SEQUENCE + [["C"], ["B"]])
    for alpha, beta in [(0.5, 0.5), (0.9, 0.3), (1.0, 1.0), (0.2, 2.0)]:
        w = np.zeros(len(names))
        for row in x:  # the update rule, literally
            w = alpha * w + beta * row
        np.testing.assert_allclose(decayed_state(x, DriftConfig(alpha=alpha, beta=beta)), w)


def test_hand_computed_shares_and_drift():
    # α=0.5, β=0.5: w1=(.5,0) w2=(.75,0) w3=(.375,.5) w4=(.4375,.5) -> A=.4375/.9375
    recent = decayed_shares(SEQUENCE, DriftConfig(alpha=0.5))
    assert recent == pytest.approx({"B": 0.5 / 0.9375, "A": 0.4375 / 0.9375}, abs=1e-6)
    assert list(recent) == ["B", "A"]  # largest first
    # α=1 (no forgetting): plain normalised counts, A=2.5, B=1.5
    long_term = decayed_shares(SEQUENCE, DriftConfig(alpha=1.0))
    assert long_term == pytest.approx({"A": 0.625, "B": 0.375})

    settings = DriftSettings(long_term=DriftConfig(alpha=1.0), recent=DriftConfig(alpha=0.5),
                             min_delta=0.01)
    lt, rc, drift = long_recent_drift(SEQUENCE, settings)
    assert [(d.category, d.direction) for d in drift] == [("A", "falling"), ("B", "rising")]
    delta = 0.5 / 0.9375 - 0.375
    assert drift[1].delta == pytest.approx(delta, abs=1e-6)
    assert drift[0].delta == pytest.approx(-delta, abs=1e-6)
    assert sum(rc.values()) == pytest.approx(1.0) and sum(lt.values()) == pytest.approx(1.0)


def test_min_delta_filters_small_moves_and_max_entries_caps():
    steady = [["A"], ["B"]] * 20
    settings = DriftSettings(min_delta=0.2)
    assert long_recent_drift(steady, settings)[2] == []
    shifted = [["A"]] * 30 + [["B"]] * 5 + [["C"]] * 5
    capped = DriftSettings(max_entries=1, min_delta=0.0)
    assert len(long_recent_drift(shifted, capped)[2]) == 1


def test_default_beta_and_half_life():
    cfg = DriftConfig(alpha=0.9)
    assert cfg.effective_beta == pytest.approx(0.1)
    assert cfg.half_life == pytest.approx(6.5788, abs=1e-3)
    assert DriftConfig(alpha=1.0).effective_beta == 1.0


def test_items_without_categories_only_decay():
    assert decayed_shares([[], []], DriftConfig(alpha=0.5)) == {}
    with_gap = decayed_shares([["A"], [], ["B"]], DriftConfig(alpha=0.5))
    assert with_gap["B"] > with_gap["A"]


def test_config_round_trips_json():
    settings = DriftSettings(long_term=DriftConfig(alpha=0.995, beta=0.2))
    assert DriftSettings.model_validate_json(settings.model_dump_json()) == settings
    with pytest.raises(ValueError):
        DriftSettings.model_validate({"recent": {"alpha": 0.5, "gamma": 1}})
