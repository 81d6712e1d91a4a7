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
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from tastelens.agent.history import CategoryCooccurrence, load_entries
from tastelens.agent.profile.facts import compute_facts, facts_profile
from tastelens.agent.profile.stated import with_stated
from tastelens.agent.rank.features import FeatureBuilder, RankRequest
from tastelens.agent.retrieve.retriever import Retriever
from tastelens.config.pipeline import ProfileFactsConfig
from tastelens.data.dataset import Dataset, catalog_indices, sort_events
from tastelens.schemas import Interaction, InterestProfile

_BATCH = 128  # cases per retrieval + feature batch
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


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
    """Predict ``target`` (catalog index) from the first ``stop`` events of ``log`` — or,
    for a cold case, from the events at ``picks`` only (positions before ``stop``), with
    the categories in ``stated`` as what the user said they like."""

    log: UserLog
    stop: int
    target: int
    picks: tuple[int, ...] | None = None
    """Positions of the history's events in ``log`` (None: all before ``stop``)."""
    stated: tuple[str, ...] = ()
    """Categories the (cold) user stated, strongest first: the profile's categories."""

    @property
    def positions(self) -> np.ndarray:
        """Positions in ``log`` of the history's events, oldest first."""
        if self.picks is None:
            return np.arange(self.stop)
        return np.asarray(self.picks, dtype=np.int64)

    @property
    def history(self) -> np.ndarray:
        return self.log.items[self.positions]

    @property
    def ratings(self) -> np.ndarray:
        return self.log.ratings[self.positions]

    @property
    def timestamps(self) -> np.ndarray:
        return self.log.timestamps[self.positions]

    @property
    def cold(self) -> bool:
        return self.picks is not None


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


def cold_cases(cases: Sequence[Case], dataset: Dataset, *, per_user: int,
               sizes: Sequence[int], stated_share: float, seed: int) -> list[Case]:
    """Cold variants of each user's newest case: the same target, but a history of only
    ``m`` of the user's liked events before it (``m`` drawn from ``sizes``; liked = rated at
    least the user's mean, every event without ratings), as a new visitor who names a few
    films they love; with ``m`` = 0, and for a ``stated_share`` of the others, the user also
    states their top one or two categories (by liked events before the target). Seeded:
    the same cases and seed give the same variants."""
    rng = np.random.default_rng(seed)
    newest: dict[str, Case] = {}
    for case in cases:
        best = newest.get(case.log.user)
        if case.picks is None and (best is None or case.stop > best.stop):
            newest[case.log.user] = case
    out: list[Case] = []
    for user in sorted(newest):
        case = newest[user]
        ratings = case.log.ratings[: case.stop]
        rated = np.isfinite(ratings)
        liked = (np.flatnonzero(ratings >= np.mean(ratings[rated])) if rated.any()
                 else np.arange(case.stop))
        for _ in range(per_user):
            m = min(int(rng.choice(sizes)), len(liked))
            picks = tuple(sorted(rng.choice(liked, size=m, replace=False).tolist()))
            stated: tuple[str, ...] = ()
            if m == 0 or rng.random() < stated_share:
                stated = _top_categories(dataset, case.log.items[liked],
                                         n=int(rng.integers(1, 3)))
            if m == 0 and not stated:
                continue  # nothing said, nothing named: no case to learn from
            out.append(Case(case.log, case.stop, case.target, picks, stated))
    return out


def _top_categories(dataset: Dataset, items: np.ndarray, n: int) -> tuple[str, ...]:
    ids = dataset.item_ids
    counts: dict[str, int] = {}
    for i in items.tolist():
        for c in dataset.items[ids[i]].categories:
            counts[c] = counts.get(c, 0) + 1
    return tuple(c for c, _ in sorted(counts.items(), key=lambda t: (-t[1], t[0]))[:n])


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
                  for i, r, t in zip(case.history.tolist(), case.ratings.tolist(),
                                     case.timestamps.tolist())]
        if not events:
            profile = InterestProfile(user=log.user, dataset=self.dataset.name,
                                      created_at=_EPOCH, history_hash="", n_items=0)
        else:
            entries = load_entries(self.dataset, log.user, events)
            facts = compute_facts(self.dataset, entries, self.config, self._cooc)
            profile = facts_profile(self.dataset, log.user, facts)
        return with_stated(profile, case.stated) if case.stated else profile


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
        # As the request would have been answered at the case's moment (its target's time):
        # no item of the future is a candidate.
        moments = [float(c.log.timestamps[c.stop])
                   if c.stop < len(c.log) and c.log.timestamps[c.stop] >= 0 else None
                   for c in part]
        pools = retriever.retrieve_many(profs, histories, n=n_candidates, as_of=moments)
        pools = [[c for c in pool if c.source != "explored"] for pool in pools]
        requests = [RankRequest(history=c.history, ratings=c.ratings,
                                timestamps=c.timestamps, profile=p, candidates=pool)
                    for c, p, pool in zip(part, profs, pools)]
        out.cases += part
        out.requests += requests
        out.features += builder.build(requests)
        out.labels += [np.array([c.item == ids[case.target] for c in pool], dtype=np.int32)
                       for case, pool in zip(part, pools)]
        if progress is not None:
            progress(len(part))
    return out
