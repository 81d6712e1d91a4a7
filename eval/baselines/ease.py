"""The ``ease`` system: a thin wrapper over
:class:`tastelens.vectorstore.collaborative.ease.EASE`, the item-item model the retriever and
the learned re-ranker use too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from tastelens.config.models import EASEConfig
from tastelens.data.dataset import History, user_sequences
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.vectorstore.collaborative.ease import EASE


class EASESystemConfig(SystemConfig, EASEConfig):
    """Config of the ``ease`` system (the model's config)."""


@register
class EASERecommender(Recommender):
    """Score of item j = sum over the history's items h of B[h, j]."""

    name = "ease"
    Config = EASESystemConfig
    config: EASESystemConfig

    def fit(self, train: pd.DataFrame) -> None:
        dataset = self.context.dataset
        self.model_ = EASE(EASEConfig(**self.config.model_dump()), dataset.n_items,
                           work_dir=self.context.work_dir)
        self.model_.fit(list(user_sequences(train, dataset).values()), dataset.item_ids)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return self.model_.scores([h.items for h in histories])
