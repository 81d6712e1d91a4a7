"""The collaborative models of one dataset: the sequence model (SASRec), the item-item
model (EASE) and the items' popularity (:class:`~tastelens.vectorstore.popularity.
PopularityPrior`), fitted on one set of interactions and served together.

- SASRec's item vectors are published to a Chroma behaviour collection named after the
  fitted model (``behaviour-sasrec-<key>``), so the retriever queries Chroma with a user's
  encoded state and gets the model's own top items by inner product;
- EASE scores a history's co-occurrence neighbourhood in memory (its n² weights do not
  belong in a vector index).

Both are cached under ``work_dir`` by config and data, so the same interactions never train
twice: ``tastelens index behaviour`` fits them on a dataset's interactions, and the
pipeline loads what that command trained (or says to run it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from tastelens.config.models import CollaborativeConfig
from tastelens.data.dataset import Dataset, user_sequences
from tastelens.errors import VectorIndexError
from tastelens.vectorstore.collaborative.ease import EASE
from tastelens.vectorstore.collaborative.sasrec import SASRec
from tastelens.vectorstore.popularity import PopularityPrior

if TYPE_CHECKING:
    from tastelens.config.settings import Settings
    from tastelens.vectorstore.collection import BehaviourIndex


def models_dir(settings: Settings, dataset_name: str) -> Path:
    """Where a dataset's fitted models live (shared with the evaluation's systems, so a
    checkpoint trained for one serves the other when config and data agree)."""
    return settings.cache_dir / "systems" / dataset_name


class CollaborativeModels:
    """SASRec (+ EASE) fitted on one dataset's sequences; see the module docstring."""

    def __init__(self, config: CollaborativeConfig, dataset: Dataset, *, work_dir: Path) -> None:
        self.config = config
        self.dataset = dataset
        self.work_dir = work_dir
        self.sasrec = SASRec(config.sasrec, dataset.n_items, work_dir=work_dir, seed=config.seed)
        self.ease = (EASE(config.ease, dataset.n_items, work_dir=work_dir)
                     if config.ease is not None else None)
        self.key: str | None = None
        self._vectors: np.ndarray | None = None
        self.prior: PopularityPrior | None = None
        """Popularity of the items in the fitted sequences (set by :meth:`fit_sequences`)."""

    # -- fitting --------------------------------------------------------------------
    def fit(self, events: pd.DataFrame) -> CollaborativeModels:
        """Fit (or load) every model on ``events`` (columns user, item, timestamp)."""
        return self.fit_sequences(list(user_sequences(events, self.dataset).values()))

    def fit_sequences(self, sequences: Sequence[np.ndarray]) -> CollaborativeModels:
        """Fit (or load) every model on catalog-index sequences, oldest first."""
        item_ids = self.dataset.item_ids
        self.sasrec.fit(sequences, item_ids)
        if self.ease is not None:
            self.ease.fit(sequences, item_ids)
        assert self.sasrec.checkpoint_dir is not None
        self.key = self.sasrec.checkpoint_dir.name
        self._vectors = self.sasrec.item_vectors()
        self.prior = PopularityPrior.fit(sequences, self.dataset)
        return self

    def is_trained(self, events: pd.DataFrame) -> bool:
        """Whether :meth:`fit` on ``events`` would only load (SASRec finished training)."""
        sequences = list(user_sequences(events, self.dataset).values())
        return self.sasrec.is_trained(sequences, self.dataset.item_ids)

    @property
    def tag(self) -> str:
        """The behaviour collection's tag: names this fitted model."""
        if self.key is None:
            raise VectorIndexError("the collaborative models are not fitted")
        return f"sasrec-{self.key}"

    # -- publishing -----------------------------------------------------------------
    def behaviour_index(self, settings: Settings) -> BehaviourIndex:
        from tastelens.vectorstore.collection import BehaviourIndex

        return BehaviourIndex.for_dataset(settings, self.dataset.name, self.tag)

    def publish(self, index: BehaviourIndex) -> int:
        """Write SASRec's item vectors to ``index`` unless it already holds them (same model
        tag, same count, lifted to a common norm); returns how many vectors it holds."""
        n = self.dataset.n_items
        if index.exists() and index.count() == n and index.max_norm is not None:
            return n
        index.replace_all(self.dataset.item_ids, self.item_vectors)
        return n

    # -- scoring --------------------------------------------------------------------
    @property
    def item_vectors(self) -> np.ndarray:
        if self._vectors is None:
            raise VectorIndexError("the collaborative models are not fitted")
        return self._vectors

    def user_states(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """SASRec's state after each history (catalog indices)."""
        return self.sasrec.user_states(histories)

    def ease_scores(self, histories: Sequence[np.ndarray]) -> np.ndarray | None:
        """EASE's scores of the whole catalog per history; None without EASE."""
        return self.ease.scores(histories) if self.ease is not None else None
