"""Paired bootstrap: identical systems straddle 0, a clearly better one excludes it."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.eval.bootstrap import mean_ci, paired_difference_ci


def test_identical_systems_give_an_interval_containing_zero():
    values = np.random.default_rng(0).random(200)
    ci = paired_difference_ci(values, values.copy(), n_resamples=500)
    assert ci.delta == 0.0 and ci.contains(0.0)


def test_noisy_equal_systems_contain_zero_and_better_system_excludes_it():
    rng = np.random.default_rng(1)
    ref = rng.binomial(1, 0.3, size=500).astype(float)
    same = rng.permutation(ref)  # same mean, different users: pure noise
    assert paired_difference_ci(same, ref, n_resamples=1000, seed=3).contains(0.0)
    better = np.maximum(ref, rng.binomial(1, 0.3, size=500))
    ci = paired_difference_ci(better, ref, n_resamples=1000)
    assert ci.low > 0 and ci.delta == pytest.approx(better.mean() - ref.mean())
    worse = paired_difference_ci(ref, better, n_resamples=1000)
    assert worse.high < 0


def test_interval_is_deterministic_and_narrows_with_confidence():
    rng = np.random.default_rng(2)
    a, b = rng.random(100), rng.random(100)
    assert paired_difference_ci(a, b, seed=5) == paired_difference_ci(a, b, seed=5)
    wide = paired_difference_ci(a, b, confidence=0.99)
    narrow = paired_difference_ci(a, b, confidence=0.5)
    assert wide.low < narrow.low <= narrow.high < wide.high


def test_mean_ci_brackets_the_mean_and_rejects_bad_input():
    values = np.random.default_rng(4).random(300)
    ci = mean_ci(values, n_resamples=400)
    assert ci.low < values.mean() < ci.high and ci.delta == pytest.approx(values.mean())
    with pytest.raises(ValueError):
        paired_difference_ci(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        mean_ci(np.array([]))
