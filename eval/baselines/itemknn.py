"""Item-based k-nearest-neighbours on binary interactions (Sarwar et al. 2001; Deshpande &
Karypis 2004): cosine item-item similarity, pruned to each item's top neighbours."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import Field

from tastelens.data.dataset import History
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.interactions import (
    history_matrix,
    rank_unknown_last,
    user_item_matrix,
)


class ItemKNNConfig(SystemConfig):
    """Config of the ``itemknn`` system."""

    neighbors: int = Field(
        default=100, ge=1, description="Similarities kept per item (its most similar items).")
    shrinkage: float = Field(
        default=0.0, ge=0.0,
        description="Added to the cosine denominator, damping similarities that rest on few "
                    "co-occurrences: sim = dot / (|i| |j| + shrinkage).")
    block_size: int = Field(
        default=1024, ge=1,
        description="Items per block when building the similarity matrix; bounds memory to "
                    "block_size x n_items floats.")


@register
class ItemKNNRecommender(Recommender):
    """Score of item j = sum over the history's items h of sim(h, j), where sim keeps only
    the ``neighbors`` largest similarities of each h."""

    name = "itemknn"
    Config = ItemKNNConfig
    config: ItemKNNConfig

    def fit(self, train: pd.DataFrame) -> None:
        x = user_item_matrix(train, self.context.dataset).tocsc()
        n_items = x.shape[1]
        norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel()).astype(np.float32)
        self.known_ = norms > 0
        xt = x.T.tocsr()
        k = min(self.config.neighbors, max(n_items - 1, 1))
        rows, cols, vals = [], [], []
        for start in range(0, n_items, self.config.block_size):
            stop = min(start + self.config.block_size, n_items)
            dots = (xt[start:stop] @ x).toarray()
            denom = np.outer(norms[start:stop], norms) + self.config.shrinkage
            with np.errstate(divide="ignore", invalid="ignore"):
                sims = np.where(denom > 0, dots / np.where(denom > 0, denom, 1.0), 0.0)
            sims[np.arange(stop - start), np.arange(start, stop)] = 0.0  # no self-similarity
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < n_items else \
                np.tile(np.arange(n_items), (stop - start, 1))
            top_vals = np.take_along_axis(sims, top, axis=1)
            keep = top_vals > 0
            rows.append(np.nonzero(keep)[0] + start)
            cols.append(top[keep])
            vals.append(top_vals[keep].astype(np.float32))
        self.similarity_ = sp.csr_matrix(
            (np.concatenate(vals) if vals else np.zeros(0, np.float32),
             (np.concatenate(rows) if rows else np.zeros(0, np.int64),
              np.concatenate(cols) if cols else np.zeros(0, np.int64))),
            shape=(n_items, n_items), dtype=np.float32)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        h = history_matrix(histories, self.context.dataset.n_items)
        scores = (h @ self.similarity_).toarray()
        return rank_unknown_last(scores, self.known_)
