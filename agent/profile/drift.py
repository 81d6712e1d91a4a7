"""Long-term versus recent category interest, and the drift between them.

The formula. Take the user's events in chronological order, t = 0 … T−1, and let x(t) ∈ R^C
be the category indicator of the item at step t, normalised to sum 1 (an item with k
categories gives 1/k to each; an item with none gives the zero vector). Starting from
w(0) = 0, every event updates the state

    w(t+1) = α·w(t) + β·x(t)          so      w(T) = β · Σ_t α^(T−1−t) · x(t),

an exponential decay over the *event sequence*. Sequence steps rather than wall-clock time,
because MovieLens users often rate dozens of films within minutes: their timestamps say
little beyond the order. The reported shares are w(T) / Σ_c w_c(T); with the default
β = 1 − α this division is exactly the bias correction of an average started at zero, so
shares of a 20-event and a 2,000-event history are comparable.

- long-term: α close to 1 (default 0.99, half-life ≈ 69 events);
- recent: smaller α (default 0.9, half-life ≈ 6.6 events);
- drift_c = recent_c − long_term_c; categories with |drift_c| ≥ ``min_delta`` are reported,
  largest magnitude first, as "rising" (positive) or "falling" (negative).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tastelens.config.pipeline import DriftConfig, DriftSettings
from tastelens.schemas import CategoryDrift


def category_indicators(
    categories: Sequence[Sequence[str]],
) -> tuple[list[str], np.ndarray]:
    """Category names (first-seen order) and the T×C matrix of normalised indicators x(t)."""
    names: dict[str, int] = {}
    for cats in categories:
        for c in cats:
            names.setdefault(c, len(names))
    matrix = np.zeros((len(categories), len(names)), dtype=np.float64)
    for t, cats in enumerate(categories):
        unique = list(dict.fromkeys(cats))
        for c in unique:
            matrix[t, names[c]] = 1.0 / len(unique)
    return list(names), matrix


def decayed_state(matrix: np.ndarray, config: DriftConfig) -> np.ndarray:
    """w(T) for the update rule above, in closed form (one weighted sum, no Python loop)."""
    steps = matrix.shape[0]
    if steps == 0:
        return np.zeros(matrix.shape[1])
    # α^(T−1−t): the newest event has exponent 0. Underflow to 0 for very old events is fine.
    powers = config.alpha ** np.arange(steps - 1, -1, -1, dtype=np.float64)
    return config.effective_beta * (powers @ matrix)


def decayed_shares(categories: Sequence[Sequence[str]], config: DriftConfig,
                   digits: int = 6) -> dict[str, float]:
    """Normalised w(T) per category, largest first; empty when no event has a category."""
    names, matrix = category_indicators(categories)
    state = decayed_state(matrix, config)
    total = float(state.sum())
    if total <= 0.0:
        return {}
    order = sorted(range(len(names)), key=lambda j: (-state[j], names[j]))
    return {names[j]: round(float(state[j] / total), digits) for j in order if state[j] > 0}


def drift_entries(long_term: dict[str, float], recent: dict[str, float],
                  settings: DriftSettings) -> list[CategoryDrift]:
    """recent − long_term per category, |delta| ≥ min_delta, largest magnitude first."""
    entries = []
    for category in set(long_term) | set(recent):
        lt, rc = long_term.get(category, 0.0), recent.get(category, 0.0)
        delta = round(rc - lt, 6)
        if abs(delta) >= settings.min_delta and delta != 0.0:
            entries.append(CategoryDrift(category=category, long_term=lt, recent=rc, delta=delta,
                                         direction="rising" if delta > 0 else "falling"))
    entries.sort(key=lambda e: (-abs(e.delta), e.category))
    return entries[: settings.max_entries]


def long_recent_drift(categories: Sequence[Sequence[str]], settings: DriftSettings,
                      ) -> tuple[dict[str, float], dict[str, float], list[CategoryDrift]]:
    """(long_term, recent, drift) for one chronological category sequence."""
    long_term = decayed_shares(categories, settings.long_term)
    recent = decayed_shares(categories, settings.recent)
    return long_term, recent, drift_entries(long_term, recent, settings)
