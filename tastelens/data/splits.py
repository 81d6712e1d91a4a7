"""Train / validation / test splits for offline evaluation.

CONTRACT (types are final; helper fills in the functions):
- leave_last_out(dataset): sort each user's events by (timestamp, item id); the last event is
  the test target, the second-to-last the validation target, the rest is training data.
  Test histories include the validation event. Users with fewer than 3 events are skipped and
  counted in `Split.skipped` (documented, not an error).
- temporal(dataset, test_fraction, validation_fraction): a global time cut.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from tastelens.data.dataset import Dataset, History


@dataclass(frozen=True)
class EvalCase:
    """Predict ``target`` (catalog index) for ``history.user`` given ``history``.

    ``mask`` holds the catalog indices excluded from full-catalog ranking: every item the
    user interacted with before the target (the target itself is never masked).
    """

    history: History
    target: int

    @property
    def user(self) -> str:
        return self.history.user


@dataclass(frozen=True)
class Split:
    """The result of a split: fit on ``train``, tune on ``validation``, report on ``test``."""

    name: str
    dataset: Dataset
    train: pd.DataFrame  # same columns as Dataset.interactions
    validation: list[EvalCase]
    test: list[EvalCase]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> number of users
