"""Matrices the collaborative baselines share: user-item, history and score helpers.

Every matrix column is a catalog index (``Dataset.item_ids`` order), so score matrices
line up with the harness without any remapping.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from tastelens.data.dataset import Dataset, History, catalog_indices


def user_item_matrix(train: pd.DataFrame, dataset: Dataset) -> sp.csr_matrix:
    """Binary (n_train_users, n_items) float32 matrix: 1 where the user met the item."""
    items = catalog_indices(train["item"], dataset)
    users, _ = pd.factorize(train["user"], sort=True)
    n_users = int(users.max()) + 1 if len(users) else 0
    matrix = sp.csr_matrix(
        (np.ones(len(items), dtype=np.float32), (users, items)),
        shape=(n_users, dataset.n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # repeated events count once: the models are on binary data
    return matrix


def history_matrix(histories: Sequence[History], n_items: int) -> sp.csr_matrix:
    """Binary (len(histories), n_items) float32 matrix of the histories' items."""
    rows = np.concatenate([np.full(len(h), r, dtype=np.int64) for r, h in enumerate(histories)]
                          or [np.zeros(0, dtype=np.int64)])
    cols = np.concatenate([np.asarray(h.items, dtype=np.int64) for h in histories]
                          or [np.zeros(0, dtype=np.int64)])
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(len(histories), n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


def rank_unknown_last(scores: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Give items the model knows nothing about a finite score below every known item's.

    ``known`` is a boolean mask over columns. Unknown items get ``row minimum - 1`` so they
    rank last but stay comparable (no NaN or inf reaches the harness).
    """
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    if known.all() or scores.shape[0] == 0:
        return scores
    if not known.any():
        scores[:] = 0.0
        return scores
    floor = scores[:, known].min(axis=1, keepdims=True) - 1.0
    scores[:, ~known] = floor
    return scores


def user_seed(seed: int, user: str) -> np.random.Generator:
    """A generator that depends only on (seed, user): same scores whatever the batch."""
    return np.random.default_rng([seed, zlib.crc32(user.encode("utf-8"))])
