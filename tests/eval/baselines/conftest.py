"""Fixtures for the baseline tests: a fake item index, contexts, and the tiny split."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest

from tastelens.data.dataset import Dataset
from tastelens.data.splits import Split, leave_last_out, masked_items
from tastelens.eval.baselines.base import SystemContext
from tastelens.vectorstore.encoders import HashingEncoder


class FakeItemIndex:
    """The ItemIndex parts the embedding baselines use (encoder, embeddings, query), over
    deterministic hashed bag-of-words vectors of the items' documents, exact search."""

    def __init__(self, dataset: Dataset, dim: int = 64) -> None:
        self.ids = list(dataset.item_ids)
        self.encoder = HashingEncoder(dim)
        self.vectors = self.encoder.encode([dataset.items[i].document() for i in self.ids])
        self.row = {item_id: r for r, item_id in enumerate(self.ids)}
        self.queries = 0

    name = "fake-items"
    hint = "build it first"

    def exists(self) -> bool:
        return True

    def embeddings(self, item_ids: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.row[i] for i in item_ids]]

    def get_metadata(self, item_ids: Sequence[str]) -> dict[str, dict]:
        return {i: {} for i in item_ids if i in self.row}

    def query(self, vectors: np.ndarray, k: int, where: dict | None = None,
              exclude: set[str] | None = None) -> list[list[tuple[str, float]]]:
        assert where is None, "the fake does not filter"
        self.queries += 1
        vectors = np.atleast_2d(np.asarray(vectors, np.float32))
        sims = vectors @ self.vectors.T
        out = []
        for row in sims:
            order = np.argsort(-row, kind="stable")
            hits = [(self.ids[j], float(row[j])) for j in order
                    if not exclude or self.ids[j] not in exclude]
            out.append(hits[:k])
        return out


@pytest.fixture(scope="session")
def fake_item_index(tiny_dataset: Dataset) -> FakeItemIndex:
    return FakeItemIndex(tiny_dataset)


@pytest.fixture(scope="session")
def tiny_split(tiny_dataset: Dataset) -> Split:
    return leave_last_out(tiny_dataset)


@pytest.fixture
def make_context(tiny_dataset: Dataset, fake_item_index: FakeItemIndex,
                 tmp_path_factory: pytest.TempPathFactory) -> Callable[..., SystemContext]:
    """A fresh context (own work_dir unless one is given) on the tiny dataset."""

    def make(work_dir: Path | None = None, seed: int = 0) -> SystemContext:
        return SystemContext(dataset=tiny_dataset,
                             work_dir=work_dir or tmp_path_factory.mktemp("work"), seed=seed,
                             resources={"item_index": fake_item_index})

    return make


class TinyEval:
    """Leave-last-out test cases of the tiny dataset and the two rates the suite compares."""

    def __init__(self, split: Split) -> None:
        self.split = split
        self.histories = [case.history for case in split.test]

    def hit_rate(self, scores: np.ndarray, k: int = 10) -> float:
        """Mean hit-rate@k of the test targets, seen items masked; ties count against the
        target, so a constant score never looks good."""
        hits = []
        for row, case in enumerate(self.split.test):
            s = scores[row].astype(np.float64).copy()
            s[masked_items(case)] = -np.inf
            target = s[case.target]
            rank = int((s > target).sum()) + int((s == target).sum()) - 1
            hits.append(rank < k)
        return float(np.mean(hits))

    def auc(self, scores: np.ndarray) -> float:
        """Mean fraction of the unmasked non-target items ranked below the target (ties
        count half): 0.5 for a random ranking, 1.0 for a perfect one. Uses the whole
        ranking, so it is far less noisy than hit-rate@10 on 30 users."""
        aucs = []
        for row, case in enumerate(self.split.test):
            keep = np.ones(scores.shape[1], dtype=bool)
            keep[masked_items(case)] = False
            keep[case.target] = False
            others = scores[row, keep]
            target = scores[row, case.target]
            aucs.append(((others < target).sum() + 0.5 * (others == target).sum()) / len(others))
        return float(np.mean(aucs))

    def random_hit_rate(self, k: int = 10) -> float:
        """Expected hit-rate@k of a uniformly random ranking of the unmasked items."""
        n_items = self.split.dataset.n_items
        sizes = [n_items - len(masked_items(case)) for case in self.split.test]
        return float(np.mean([min(k, n) / n for n in sizes]))


@pytest.fixture(scope="session")
def tiny_eval(tiny_split: Split) -> TinyEval:
    return TinyEval(tiny_split)
