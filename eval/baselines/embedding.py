"""Content baselines on the item text embeddings: a user is the (weighted) mean of the
history items' vectors, and items are ranked by cosine similarity to it.

The vectors come from the shared Chroma item index (``context.resource("item_index")``,
a :class:`tastelens.vectorstore.item_index.ItemIndex`): ``embeddings(ids)`` returns
L2-normalised float32 rows and ``query(vectors, k, where=None, exclude=None)`` returns each
query's top-k ``(item_id, score)`` pairs, higher is closer.

Full-catalog scores are computed as one matrix product against all item vectors, fetched
once in ``fit`` — the same ranking as an exhaustive Chroma query, thousands of times faster.
With ``use_chroma_query`` the ranking comes from Chroma itself instead (top ``chroma_top_n``
items scored, every other item ``-inf``), which checks the index end to end.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import Field

from tastelens.data.dataset import History
from tastelens.eval.baselines.base import Recommender, SystemConfig, register


class EmbedMeanConfig(SystemConfig):
    """Config of the ``embed-mean`` system."""

    use_chroma_query: bool = Field(
        default=False,
        description="Rank with Chroma's nearest-neighbour query instead of the in-memory "
                    "matrix product; items outside the top chroma_top_n score -inf.")
    chroma_top_n: int = Field(
        default=200, ge=1, description="Items fetched per user when use_chroma_query is on.")


class EmbedRecencyConfig(EmbedMeanConfig):
    """Config of the ``embed-recency`` system."""

    half_life: float = Field(
        default=1.0, gt=0.0,
        description="Events after which an item's weight halves: the newest item weighs 1, "
                    "the one half_life events earlier 0.5.")


@register
class EmbedMeanRecommender(Recommender):
    """Cosine similarity between each item and the mean of the history's item vectors."""

    name = "embed-mean"
    Config = EmbedMeanConfig
    needs = ("item_index",)
    config: EmbedMeanConfig

    def fit(self, train: pd.DataFrame) -> None:
        """Fetch every catalog item's vector once; the training frame is not used (the
        vectors come from the items' text, not from interactions)."""
        self.index_ = self.context.resource("item_index")
        vectors = np.asarray(self.index_.embeddings(self.context.dataset.item_ids),
                             dtype=np.float32)
        if vectors.shape[0] != self.context.dataset.n_items:
            raise ValueError(f"{self.name}: the item index returned {vectors.shape[0]} vectors "
                             f"for {self.context.dataset.n_items} catalog items")
        self.item_vectors_ = _normalise(vectors)

    def weights(self, n: int) -> np.ndarray:
        """Weight of each history position, oldest first."""
        return np.ones(n, dtype=np.float32)

    def user_vectors(self, histories: Sequence[History]) -> np.ndarray:
        """Unit-length user vectors (zero for an empty history)."""
        out = np.zeros((len(histories), self.item_vectors_.shape[1]), dtype=np.float32)
        for row, history in enumerate(histories):
            if len(history):
                out[row] = self.weights(len(history)) @ self.item_vectors_[history.items]
        return _normalise(out)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        users = self.user_vectors(histories)
        if not self.config.use_chroma_query:
            return np.ascontiguousarray(users @ self.item_vectors_.T, dtype=np.float32)
        return self._score_with_chroma(users)

    def _score_with_chroma(self, users: np.ndarray) -> np.ndarray:
        item_index = self.context.dataset.item_index
        scores = np.full((users.shape[0], self.context.dataset.n_items), -np.inf, np.float32)
        # An empty history has no direction (cosine undefined): all zeros, as the matrix path.
        rows = np.flatnonzero(np.abs(users).sum(axis=1) > 0)
        scores[np.setdiff1d(np.arange(users.shape[0]), rows)] = 0.0
        if len(rows):
            k = min(self.config.chroma_top_n, self.context.dataset.n_items)
            for row, hits in zip(rows, self.index_.query(users[rows], k)):
                for item_id, value in hits:
                    scores[row, item_index[item_id]] = value
        return scores


@register
class EmbedRecencyRecommender(EmbedMeanRecommender):
    """Like ``embed-mean`` but recent items weigh more: weight = 0.5 ** (age / half_life),
    where age counts events back from the newest."""

    name = "embed-recency"
    Config = EmbedRecencyConfig
    config: EmbedRecencyConfig

    def weights(self, n: int) -> np.ndarray:
        age = np.arange(n - 1, -1, -1, dtype=np.float32)
        return np.power(0.5, age / self.config.half_life, dtype=np.float32)


def _normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32)
