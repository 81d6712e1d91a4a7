"""Labelled ranking examples for the learned re-ranker, built by cross-fitting.

A ranking example is one (history, held-out next item) case: the serving path's retriever
returns the candidates for the history, every candidate gets its features, and the label
marks the held-out item. The collaborative models must not have seen that item, or their
scores would be too good to learn from, so:

- the newest ``cuts`` events of every user are the targets, each with the events before it
  as history (a user with L events gives the cases at positions L-cuts … L-1);
- the collaborative models and item statistics of these cases are fitted on every user's
  events *before* the cuts — the cross-fitted models — never on a target;
- the models that serve (fitted on everything) are only used for cases whose target they
  have not seen either (``later`` cases of
  :func:`~tastelens.finetune.ranker.build_training_examples`: an evaluation's validation
  targets).

:func:`build_examples` runs the retriever and the feature builder over cases in batches and
keeps each case's candidates, features and label.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tastelens.agent.profile.facts import (
    CategoryCooccurrence,
    compute_facts,
    facts_profile,
    load_entries,
)
from tastelens.agent.rank.features import FeatureBuilder, RankRequest
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.data.dataset import Dataset, catalog_indices, sort_events
from tastelens.pipeline_config import ProfileFactsConfig
from tastelens.schemas import Interaction, InterestProfile

_BATCH = 128  # cases per retrieval + feature batch


@dataclass(frozen=True)
class UserLog:
    """One user's events in time order: catalog indices, ratings (NaN: none), timestamps
    (-1: none)."""

    user: str
    items: np.ndarray
    ratings: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.items)

    def without_newest(self, n: int) -> UserLog:
        """The log without its newest ``n`` events."""
        keep = max(len(self) - n, 0)
        return UserLog(self.user, self.items[:keep], self.ratings[:keep],
                       self.timestamps[:keep])


@dataclass(frozen=True)
class Case:
    """Predict ``target`` (catalog index) from the first ``stop`` events of ``log``."""

    log: UserLog
    stop: int
    target: int

    @property
    def history(self) -> np.ndarray:
        return self.log.items[: self.stop]


@dataclass
class Examples:
    """Built cases: per case its ranking request (candidates included), features
    (candidates × FEATURES) and labels (1 for the target, 0 for the others)."""

    cases: list[Case] = field(default_factory=list)
    requests: list[RankRequest] = field(default_factory=list)
    features: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.cases)

    def recall(self) -> float:
        """Share of cases whose target is among their candidates."""
        return float(np.mean([y.any() for y in self.labels])) if self.labels else 0.0

    def extend(self, other: Examples) -> None:
        self.cases += other.cases
        self.requests += other.requests
        self.features += other.features
        self.labels += other.labels


def user_logs(events: pd.DataFrame, dataset: Dataset) -> list[UserLog]:
    """Every user's events as a :class:`UserLog`, users in sorted order."""
    ordered = sort_events(events)
    if ordered.empty:
        return []
    items = catalog_indices(ordered["item"], dataset)
    ratings = ordered["rating"].to_numpy(dtype=np.float64)
    times = ordered["timestamp"].to_numpy(dtype=np.int64)
    users = ordered["user"].to_numpy()
    starts = np.r_[0, np.flatnonzero(users[1:] != users[:-1]) + 1]
    ends = np.r_[starts[1:], len(users)]
    return [UserLog(str(users[s]), items[s:e], ratings[s:e], times[s:e])
            for s, e in zip(starts, ends)]


def cut_cases(logs: Sequence[UserLog], cuts: int, min_history: int,
              ) -> tuple[list[UserLog], list[Case]]:
    """(every log without its newest ``cuts`` events, the cases at those events). A case
    needs ``min_history`` events before its target."""
    early, cases = [], []
    for log in logs:
        early.append(log.without_newest(cuts))
        cases += [Case(log, i, int(log.items[i]))
                  for i in range(max(len(early[-1]), min_history), len(log))]
    return early, cases


def logs_frame(logs: Sequence[UserLog], dataset: Dataset) -> pd.DataFrame:
    """The events of ``logs`` as an interactions frame (for item statistics)."""
    ids = np.asarray(dataset.item_ids, dtype=object)
    return pd.DataFrame({
        "user": np.concatenate([[log.user] * len(log) for log in logs] or [[]]),
        "item": ids[np.concatenate([log.items for log in logs] or [[]]).astype(np.int64)],
        "rating": np.concatenate([log.ratings for log in logs] or [[]]),
        "timestamp": np.concatenate([log.timestamps for log in logs] or [[]]).astype(np.int64),
    })


class CaseProfiles:
    """Data-facts profiles of case histories (what the pipeline uses without an LLM call)."""

    def __init__(self, dataset: Dataset, config: ProfileFactsConfig) -> None:
        self.dataset = dataset
        self.config = config
        self._cooc = CategoryCooccurrence.from_dataset(dataset, config)

    def __call__(self, case: Case) -> InterestProfile:
        ids = self.dataset.item_ids
        log = case.log
        events = [Interaction(user=log.user, item=ids[i],
                              rating=None if np.isnan(r) else float(r),
                              timestamp=None if t < 0 else int(t))
                  for i, r, t in zip(log.items[: case.stop].tolist(),
                                     log.ratings[: case.stop].tolist(),
                                     log.timestamps[: case.stop].tolist())]
        entries = load_entries(self.dataset, log.user, events)
        facts = compute_facts(self.dataset, entries, self.config, self._cooc)
        return facts_profile(self.dataset, log.user, facts)


def build_examples(cases: Sequence[Case], *, retriever: Retriever, builder: FeatureBuilder,
                   profiles: Callable[[Case], InterestProfile], n_candidates: int,
                   progress: Callable[[int], None] | None = None) -> Examples:
    """Retrieve and featurise every case (explored candidates are left out: the re-ranker
    orders the retrieved ones only)."""
    ids = builder.dataset.item_ids
    out = Examples()
    for lo in range(0, len(cases), _BATCH):
        part = list(cases[lo:lo + _BATCH])
        profs = [profiles(c) for c in part]
        histories = [[ids[i] for i in c.history] for c in part]
        pools = retriever.retrieve_many(profs, histories, n=n_candidates)
        pools = [[c for c in pool if c.source != "explored"] for pool in pools]
        requests = [RankRequest(history=c.history, ratings=c.log.ratings[: c.stop],
                                timestamps=c.log.timestamps[: c.stop], profile=p,
                                candidates=pool)
                    for c, p, pool in zip(part, profs, pools)]
        out.cases += part
        out.requests += requests
        out.features += builder.build(requests)
        out.labels += [np.array([c.item == ids[case.target] for c in pool], dtype=np.int32)
                       for case, pool in zip(part, pools)]
        if progress is not None:
            progress(len(part))
    return out
