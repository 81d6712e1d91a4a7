"""The two reference points every evaluation reports: random and most-popular."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from tastelens.data.dataset import History
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.interactions import catalog_indices, user_seed


class RandomConfig(SystemConfig):
    """Config of the ``random`` system."""

    seed: int | None = Field(
        default=None, description="Seed of the scores; None uses the run's seed (context.seed).")


@register
class RandomRecommender(Recommender):
    """Uniform random scores, seeded per (seed, user) so a user's scores do not depend on
    which other users are scored in the same batch."""

    name = "random"
    Config = RandomConfig
    config: RandomConfig

    def fit(self, train: pd.DataFrame) -> None:
        """Nothing to learn."""

    def score(self, histories: Sequence[History]) -> np.ndarray:
        seed = self.context.seed if self.config.seed is None else self.config.seed
        n_items = self.context.dataset.n_items
        out = np.empty((len(histories), n_items), dtype=np.float32)
        for row, history in enumerate(histories):
            out[row] = user_seed(seed, history.user).random(n_items, dtype=np.float32)
        return out


class PopularityConfig(SystemConfig):
    """Config of the ``popularity`` system."""

    distinct_users: bool = Field(
        default=False,
        description="Count distinct users per item instead of interaction events "
                    "(identical on MovieLens, where a user rates an item once).")


@register
class PopularityRecommender(Recommender):
    """Scores every user with the items' interaction counts in the training data.

    Items never seen in training score 0, below every seen item.
    """

    name = "popularity"
    Config = PopularityConfig
    config: PopularityConfig

    def fit(self, train: pd.DataFrame) -> None:
        frame = train.drop_duplicates(["user", "item"]) if self.config.distinct_users else train
        items = catalog_indices(frame["item"], self.context.dataset)
        counts = np.bincount(items, minlength=self.context.dataset.n_items)
        self.counts_ = counts.astype(np.float32)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(histories), self.counts_.shape[0])).copy()
