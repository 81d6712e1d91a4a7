"""EASE, the embarrassingly shallow autoencoder (Steck, WWW 2019): an item-item model that
scores a history's co-occurrence neighbourhood. The retriever asks it for candidates next to
the sequence model's, and the learned re-ranker reads its scores.

Closed form on the binary user-item matrix X: with P = (XᵀX + λI)⁻¹, the item-item weights
are B = I - P · diagMat(1 / diag(P)), i.e. B_ij = -P_ij / P_jj off the diagonal and 0 on it.
Only items seen in training take part, which shrinks the dense inverse; the others rank last.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import scipy.linalg
import scipy.sparse as sp

from tastelens.config.models import EASEConfig
from tastelens.errors import ConfigError
from tastelens.fsutil import atomic_write
from tastelens.vectorstore.collaborative.sasrec import sequences_fingerprint

WEIGHTS_VERSION = 1


def binary_matrix(sequences: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary (len(sequences), n_items) float32 matrix: 1 where a row met the item (repeated
    events count once)."""
    rows = np.concatenate([np.full(len(s), r, dtype=np.int64) for r, s in enumerate(sequences)]
                          or [np.zeros(0, dtype=np.int64)])
    cols = np.concatenate([np.asarray(s, dtype=np.int64) for s in sequences]
                          or [np.zeros(0, dtype=np.int64)])
    matrix = sp.csr_matrix((np.ones(len(cols), dtype=np.float32), (rows, cols)),
                           shape=(len(sequences), n_items))
    matrix.sum_duplicates()
    matrix.data[:] = 1.0
    return matrix


class EASE:
    """A fitted EASE over a catalog of ``n_items``. With ``work_dir`` the weights are cached
    under ``<work_dir>/ease/<key>.npz`` (key: config + data), so a second fit on the same data
    loads them."""

    def __init__(self, config: EASEConfig, n_items: int, *, work_dir: Path | None = None,
                 ) -> None:
        self.config = config
        self.n_items = n_items
        self.work_dir = work_dir
        self.columns: np.ndarray | None = None
        self.weights: np.ndarray | None = None
        self.loaded = False

    def fit(self, sequences: Sequence[np.ndarray], item_ids: Sequence[str]) -> EASE:
        """Fit on ``sequences`` (catalog indices), or load the cached weights of this data."""
        path = self._cache_path(sequences, item_ids)
        if path is not None and path.is_file():
            with np.load(path) as saved:
                self.columns, self.weights = saved["columns"], saved["weights"]
            self.loaded = True
            return self
        x = binary_matrix(sequences, self.n_items)
        counts = np.asarray(x.sum(axis=0)).ravel()
        self.columns = np.flatnonzero(counts >= self.config.min_item_count)
        xk = x[:, self.columns]
        gram = (xk.T @ xk).toarray().astype(np.dtype(self.config.dtype))
        gram[np.diag_indices_from(gram)] += self.config.l2
        self.weights = ease_weights(gram).astype(np.float32)
        if path is not None:
            columns, weights = self.columns, self.weights
            atomic_write(path, lambda tmp: _save_npz(tmp, columns, weights))
        return self

    def scores(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        """(len(histories), n_items) float32; items outside the model get a finite score
        below every known item's (row minimum - 1)."""
        if self.weights is None or self.columns is None:
            raise RuntimeError("EASE is not fitted: call fit() first")
        h = binary_matrix(histories, self.n_items)[:, self.columns]
        scores = np.zeros((len(histories), self.n_items), dtype=np.float32)
        scores[:, self.columns] = np.asarray(h @ self.weights)
        known = np.zeros(self.n_items, dtype=bool)
        known[self.columns] = True
        if known.all() or scores.shape[0] == 0:
            return scores
        if not known.any():
            scores[:] = 0.0
            return scores
        scores[:, ~known] = scores[:, known].min(axis=1, keepdims=True) - 1.0
        return scores

    def _cache_path(self, sequences: Sequence[np.ndarray], item_ids: Sequence[str],
                    ) -> Path | None:
        if self.work_dir is None:
            return None
        meta = {"version": WEIGHTS_VERSION, "config": self.config.model_dump(),
                "data": sequences_fingerprint(sequences, item_ids)}
        key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]
        return self.work_dir / "ease" / f"{key}.npz"


def _save_npz(path: Path, columns: np.ndarray, weights: np.ndarray) -> None:
    with path.open("wb") as handle:  # a file object: np.savez would append ".npz" to a name
        np.savez(handle, columns=columns, weights=weights)


def ease_weights(gram: np.ndarray) -> np.ndarray:
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
