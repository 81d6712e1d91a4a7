"""Paired bootstrap confidence intervals over users.

Every system is scored on the same users, so the honest question is "how much better than
the reference, on the same users?": resample users with replacement, recompute the mean
per-user difference, and take the percentile interval. The resampled user indices depend
only on (n_users, n_resamples, seed), so every system and metric sees the same resamples.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

_CHUNK = 256  # resamples per chunk: bounds memory at 256 x n_users indices


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    delta: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _resample_means(values: np.ndarray, n_resamples: int, seed: int) -> Iterator[np.ndarray]:
    """Means of ``values`` (shape (n,) or (m, n): m series resampled together), chunked."""
    n = values.shape[-1]
    rng = np.random.default_rng(seed)
    done = 0
    while done < n_resamples:
        size = min(_CHUNK, n_resamples - done)
        idx = rng.integers(0, n, size=(size, n))
        yield values[..., idx].mean(axis=-1)
        done += size


def _interval(point: float, samples: np.ndarray, confidence: float) -> Interval:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return Interval(delta=float(point), low=float(low), high=float(high))


def paired_difference_ci(system: np.ndarray, reference: np.ndarray, *, n_resamples: int = 1000,
                         confidence: float = 0.95, seed: int = 0) -> Interval:
    """CI of mean(system - reference) over paired per-user values."""
    system = np.asarray(system, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if system.shape != reference.shape or system.ndim != 1 or system.size == 0:
        raise ValueError("paired bootstrap needs two non-empty 1-d arrays of the same length")
    diff = system - reference
    samples = np.concatenate(list(_resample_means(diff, n_resamples, seed)))
    return _interval(diff.mean(), samples, confidence)


def mean_ci(values: np.ndarray, *, n_resamples: int = 1000, confidence: float = 0.95,
            seed: int = 0) -> Interval:
    """CI of the mean of per-user values (``delta`` holds the mean itself)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise ValueError("bootstrap needs a non-empty 1-d array")
    samples = np.concatenate(list(_resample_means(values, n_resamples, seed)))
    return _interval(values.mean(), samples, confidence)
