"""The baselines of ``eval chat``: the harness's registered systems, seeded with the movies
the seeker named, and the dialogue text embedded against the item index.

- **seeded systems** (any registered type — ``itemknn``, ``ease``, ``sasrec`` … see
  ``tastelens eval systems``): fitted once on *all* of the dataset's interactions (a visitor
  is no user of the data: nothing is held out), then scored from a history of the catalog
  movies the seeker named before the target, in naming order, whatever was said of them.
  A case whose seeker named none has no history to score: it gets the popularity order
  instead, and the report counts these cases (``fallback``). ``popularity`` and ``random``
  need no history and are scored as they are.
- ``dialogue-embedding``: the seeker's messages before the target, joined by newlines,
  embedded with the item index's text encoder; items ranked by cosine to that vector (the
  vectors of the Chroma item index, ``tastelens index build``).

Every baseline's list leaves out the movies named before the target (by either person),
as the chat's does; ranks follow the harness's tie convention
(:mod:`tastelens.eval.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from tastelens.config.base import validation_problems
from tastelens.data.dataset import Dataset, History
from tastelens.errors import ConfigError
from tastelens.eval import metrics as M
from tastelens.eval.baselines.base import Recommender, SystemContext, build, registered
from tastelens.eval.chat.cases import ChatCase
from tastelens.eval.chat.config import BaselineSpec

TEXT_EMBEDDING = "dialogue-embedding"
UNSEEDED = frozenset({"popularity", "random"})
"""Registered types that ignore the history: never replaced by the popularity fallback."""
BATCH = 256


@dataclass
class BaselineRanks:
    """Where one baseline ranked each case's target, and how it got there."""

    ranks: M.TargetRanks
    fallback: np.ndarray
    """True where the popularity order stood in (the seeker named no catalog movie)."""
    fit_seconds: float
    score_seconds: float


def check_baselines(specs: Sequence[BaselineSpec], where: Callable[[str], str]) -> None:
    """Every spec's type is registered (or the text embedding) and its params valid."""
    known = registered()
    names = [s.name for s in specs]
    for i, spec in enumerate(specs):
        if spec.name == "chat":
            raise ConfigError(f"{where(f'baselines.{i}.name')}: 'chat' names the chat itself")
        if names.count(spec.name) > 1:
            raise ConfigError(f"{where(f'baselines.{i}.name')}: {spec.name!r} repeats")
        if spec.type == TEXT_EMBEDDING:
            if spec.params:
                raise ConfigError(f"{where(f'baselines.{i}.params')}: {TEXT_EMBEDDING} takes "
                                  "no params")
            continue
        if spec.type not in known:
            raise ConfigError(f"{where(f'baselines.{i}.type')}: unknown system type "
                              f"{spec.type!r}; known: {TEXT_EMBEDDING}, "
                              f"{', '.join(sorted(known))}")
        try:
            known[spec.type].Config.model_validate(spec.params)
        except ValidationError as exc:
            problems = "; ".join(f"{key}: {msg}" for key, msg in validation_problems(exc))
            raise ConfigError(f"{where(f'baselines.{i}.params')}: invalid params for "
                              f"{spec.type!r}: {problems}") from None


def needs_of(specs: Sequence[BaselineSpec]) -> set[str]:
    """The shared resources the baselines use (built once by the harness)."""
    known = registered()
    needs = {n for s in specs if s.type in known for n in known[s.type].needs}
    return needs | ({"item_index"} if any(s.type == TEXT_EMBEDDING for s in specs) else set())


def score_baseline(spec: BaselineSpec, cases: Sequence[ChatCase], context: SystemContext,
                   popularity: np.ndarray) -> BaselineRanks:
    """Fit ``spec`` on all interactions and rank every case's target (see the module
    docstring); ``popularity``: interaction counts per catalog item, the fallback order."""
    dataset = context.dataset
    t0 = time.perf_counter()
    if spec.type == TEXT_EMBEDDING:
        scorer = _TextScorer(context.resource("item_index"), dataset)
        seeded = False
    else:
        system: Recommender = build(spec.type, spec.params, context)
        system.fit(dataset.interactions)
        scorer = _SystemScorer(system, dataset)
        seeded = spec.type not in UNSEEDED
    fit_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    greater, ties, n_ranked, fallback = [], [], [], []
    index = dataset.item_index
    for start in range(0, len(cases), BATCH):
        batch = list(cases[start:start + BATCH])
        use_pop = np.array([seeded and not c.seeds for c in batch])
        scores = np.empty((len(batch), dataset.n_items), dtype=np.float64)
        scores[use_pop] = popularity
        rows = np.flatnonzero(~use_pop)
        if len(rows):
            scores[rows] = scorer([batch[r] for r in rows])
        masked = []
        for row, case in enumerate(batch):
            cols = [index[i] for i in case.excluded]
            scores[row, cols] = -np.inf
            masked.append(len(cols))
        if np.isnan(scores).any():
            raise ConfigError(f"baseline {spec.name!r} ({spec.type}) returned NaN scores")
        targets = np.array([index[c.target] for c in batch], dtype=np.int64)
        ranks = M.target_ranks(scores, targets, np.array(masked))
        greater.append(ranks.greater)
        ties.append(ranks.ties)
        n_ranked.append(ranks.n_ranked)
        fallback.append(use_pop)
    ranks = M.TargetRanks(np.concatenate(greater), np.concatenate(ties), np.concatenate(n_ranked))
    return BaselineRanks(ranks, np.concatenate(fallback), fit_s, time.perf_counter() - t1)


class _SystemScorer:
    def __init__(self, system: Recommender, dataset: Dataset) -> None:
        self.system = system
        self.dataset = dataset

    def __call__(self, cases: Sequence[ChatCase]) -> np.ndarray:
        index = self.dataset.item_index
        histories = []
        for case in cases:
            n = len(case.seeds)
            histories.append(History(user=f"conversation {case.conversation}",
                                     items=np.array([index[i] for i in case.seeds], np.int64),
                                     ratings=np.full(n, np.nan, np.float32),
                                     timestamps=np.full(n, -1, np.int64)))
        scores = np.asarray(self.system.score(histories), dtype=np.float64)
        if scores.shape != (len(cases), self.dataset.n_items):
            raise ConfigError(f"system {self.system.name!r} returned scores of shape "
                              f"{scores.shape}, expected {(len(cases), self.dataset.n_items)}")
        return scores


class _TextScorer:
    def __init__(self, item_index: Any, dataset: Dataset) -> None:
        vectors = np.asarray(item_index.embeddings(dataset.item_ids), dtype=np.float32)
        if vectors.shape[0] != dataset.n_items:
            raise ConfigError(f"{TEXT_EMBEDDING}: the item index returned {vectors.shape[0]} "
                              f"vectors for {dataset.n_items} catalog items")
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        self.items = vectors / np.where(norms > 0, norms, 1.0)
        self.encoder = item_index.encoder

    def __call__(self, cases: Sequence[ChatCase]) -> np.ndarray:
        texts = ["\n".join(c.seeker_text) for c in cases]
        queries = np.asarray(self.encoder.encode(texts), dtype=np.float32)
        return (queries @ self.items.T).astype(np.float64)


def popularity_counts(dataset: Dataset) -> np.ndarray:
    """Interactions per catalog item (all of the data): the fallback order."""
    codes = dataset.interactions["item"].map(dataset.item_index).dropna().astype(np.int64)
    return np.bincount(codes.to_numpy(), minlength=dataset.n_items).astype(np.float64)
