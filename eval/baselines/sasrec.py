"""The ``sasrec`` system: a thin wrapper over the serving sequence model
(:class:`tastelens.vectorstore.collaborative.sasrec.SASRec`), so the baseline and the
retriever's collaborative query are the same model, trained the same way."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from tastelens.config.models import SASRecConfig
from tastelens.data.dataset import History, user_sequences
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.vectorstore.collaborative.sasrec import SASRec


class SASRecSystemConfig(SystemConfig, SASRecConfig):
    """Config of the ``sasrec`` system: the model's config plus its training seed."""

    seed: int | None = Field(default=None, description="Training seed; None uses the run's.")


@register
class SASRecRecommender(Recommender):
    """Scores = final hidden state · item embeddings, for every catalog item."""

    name = "sasrec"
    Config = SASRecSystemConfig
    config: SASRecSystemConfig

    def fit(self, train: pd.DataFrame) -> None:
        """Train (or resume, or load) on ``train``; the model's checkpoint is shared with any
        other user of the same config, seed and data (e.g. the pipeline's retriever)."""
        ctx = self.context
        seed = ctx.seed if self.config.seed is None else self.config.seed
        model_config = SASRecConfig(**self.config.model_dump(exclude={"seed"}))
        self.model_ = SASRec(model_config, ctx.dataset.n_items, work_dir=ctx.work_dir,
                             seed=seed)
        self.model_.fit(list(user_sequences(train, ctx.dataset).values()), ctx.dataset.item_ids)

    # The fitted model's training record, under the names the harness and tests read.
    @property
    def history_(self) -> list[dict[str, float]]:
        return self.model_.history

    @property
    def resumed_from_epoch_(self) -> int:
        return self.model_.resumed_from_epoch

    @property
    def epochs_run_(self) -> int:
        return self.model_.epochs_run

    @property
    def best_epoch_(self) -> int:
        return self.model_.best_epoch

    @property
    def checkpoint_dir_(self):  # noqa: ANN201 - a Path
        return self.model_.checkpoint_dir

    def score(self, histories: Sequence[History]) -> np.ndarray:
        return self.model_.scores([h.items for h in histories])

    def item_embeddings(self) -> np.ndarray:
        """(n_items, hidden) output embeddings in catalog order (inner-product space)."""
        return self.model_.item_vectors()

    def user_vector(self, history: History) -> np.ndarray:
        """The state after ``history`` (hidden,) float32: score = it · items."""
        return self.model_.user_states([history.items])[0]
