"""EASE, the embarrassingly shallow autoencoder (Steck, WWW 2019).

Closed form on the binary user-item matrix X: with P = (XᵀX + λI)⁻¹, the item-item weights
are B = I - P · diagMat(1 / diag(P)), i.e. B_ij = -P_ij / P_jj off the diagonal and 0 on it.
Only items seen in training take part, which shrinks the dense inverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd
import scipy.linalg
from pydantic import Field

from tastelens.data.dataset import History
from tastelens.eval.baselines.base import Recommender, SystemConfig, register
from tastelens.eval.baselines.interactions import (
    history_matrix,
    rank_unknown_last,
    user_item_matrix,
)
from tastelens.errors import ConfigError


class EASEConfig(SystemConfig):
    """Config of the ``ease`` system."""

    l2: float = Field(default=250.0, gt=0.0,
                      description="λ, the L2 penalty added to the Gram matrix's diagonal.")
    min_item_count: int = Field(
        default=1, ge=1,
        description="Items with fewer training interactions are left out of the model "
                    "(they rank last); raising it shrinks the n² inverse.")
    dtype: Literal["float32", "float64"] = Field(
        default="float64",
        description="Precision of the inverse; float32 halves memory and time.")


@register
class EASERecommender(Recommender):
    """Score of item j = sum over the history's items h of B[h, j]."""

    name = "ease"
    Config = EASEConfig
    config: EASEConfig

    def fit(self, train: pd.DataFrame) -> None:
        x = user_item_matrix(train, self.context.dataset)
        counts = np.asarray(x.sum(axis=0)).ravel()
        self.known_ = counts >= self.config.min_item_count
        self.columns_ = np.flatnonzero(self.known_)
        xk = x[:, self.columns_]
        dtype = np.dtype(self.config.dtype)
        gram = (xk.T @ xk).toarray().astype(dtype)
        gram[np.diag_indices_from(gram)] += self.config.l2
        self.weights_ = _ease_weights(gram).astype(np.float32)

    def score(self, histories: Sequence[History]) -> np.ndarray:
        n_items = self.context.dataset.n_items
        h = history_matrix(histories, n_items)[:, self.columns_]
        scores = np.zeros((len(histories), n_items), dtype=np.float32)
        scores[:, self.columns_] = np.asarray(h @ self.weights_)
        return rank_unknown_last(scores, self.known_)


def _ease_weights(gram: np.ndarray) -> np.ndarray:
    """B from the regularised Gram matrix, inverted via Cholesky (symmetric positive
    definite), about twice as fast as a general LU inverse."""
    if gram.shape[0] == 0:
        return gram
    potrf, potri = scipy.linalg.lapack.get_lapack_funcs(("potrf", "potri"), (gram,))
    chol, info = potrf(gram, lower=False, overwrite_a=True)
    if info != 0:
        raise ConfigError(f"ease: the Gram matrix is not positive definite (LAPACK info={info});"
                          " raise l2")
    inv, info = potri(chol, lower=False, overwrite_c=True)
    if info != 0:
        raise ConfigError(f"ease: inverting the Gram matrix failed (LAPACK info={info})")
    # potri fills only the upper triangle; mirror it to get the full symmetric P.
    inv = np.triu(inv)
    inv += np.triu(inv, 1).T
    inv /= -np.diag(inv)[None, :]  # in place: the n² matrices dominate memory
    np.fill_diagonal(inv, 0.0)
    return inv
