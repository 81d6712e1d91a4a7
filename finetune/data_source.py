"""Where fine-tuning examples come from: the TRAINING part of the eval harness's split.

:func:`training_data` runs :func:`tastelens.data.splits.leave_last_out` with the eval
protocol's defaults (each user's last event is the test target, the one before it the
validation target) and keeps only ``split.train``. Example builders read histories from
here, so no validation or test (user, item) event can reach a prompt or a target; the
held-out pairs are kept too, so tests (and the card) can prove it.
"""

from __future__ import annotations

import math
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tastelens.data.dataset import Dataset, sort_events
from tastelens.data.splits import Split, leave_last_out
from tastelens.schemas import Interaction

SPLIT_DESCRIPTION = {
    "kind": "leave-last-out",
    "test": "each user's last event (by timestamp, then item id)",
    "validation": "each user's second-to-last event",
    "train": "every other event; examples are built from these only",
    "users_with_fewer_than_3_events": "all their events stay in train",
}


@dataclass(frozen=True)
class TrainingData:
    """Training histories per user plus what must never be used."""

    dataset: Dataset
    split: Split
    histories: dict[str, list[Interaction]]
    """Each user's training events, oldest first (timestamp, then item id)."""
    seen: dict[str, frozenset[str]]
    """Every item each user interacted with in ANY part of the split (never a negative)."""
    held_out: dict[str, frozenset[str]]
    """Validation and test items per user: must appear in no example of that user."""
    popular: list[str]
    """Items by training interaction count, most first (ties by catalog order)."""

    @property
    def users(self) -> list[str]:
        return [u for u in self.dataset.user_ids if u in self.histories]

    def split_summary(self) -> dict[str, object]:
        return {**SPLIT_DESCRIPTION, "train_events": len(self.split.train),
                "validation_cases": len(self.split.validation),
                "test_cases": len(self.split.test), "skipped": dict(self.split.skipped)}


def training_data(dataset: Dataset) -> TrainingData:
    """Split ``dataset`` like the eval harness and index its training part per user."""
    split = leave_last_out(dataset)
    dataset = split.dataset  # only tags dated before each user's held-out events
    histories: dict[str, list[Interaction]] = {}
    for row in sort_events(split.train).itertuples(index=False):
        rating = None if math.isnan(row.rating) else float(row.rating)
        stamp = None if row.timestamp < 0 else int(row.timestamp)
        histories.setdefault(row.user, []).append(
            Interaction(user=row.user, item=row.item, rating=rating, timestamp=stamp))
    seen = {str(user): frozenset(frame["item"]) for user, frame in
            dataset.interactions.groupby("user", sort=False)}
    held: dict[str, set[str]] = {}
    for case in [*split.validation, *split.test]:
        held.setdefault(case.user, set()).add(dataset.item_ids[case.target])
    counts = Counter(split.train["item"])
    order = {item: i for i, item in enumerate(dataset.item_ids)}
    popular = sorted(counts, key=lambda i: (-counts[i], order[i]))
    return TrainingData(dataset=dataset, split=split, histories=histories, seen=seen,
                        held_out={u: frozenset(s) for u, s in held.items()}, popular=popular)


def user_rng(seed: int, user: str, salt: str = "") -> np.random.Generator:
    """A generator per (seed, user, purpose): a user's examples do not depend on which other
    users were selected or in which order they were processed."""
    return np.random.default_rng([seed & 0xFFFFFFFF, zlib.crc32(f"{salt}\0{user}".encode())])


def assign_users(users: Sequence[str], *, eval_fraction: float, max_users: int | None,
                 seed: int) -> tuple[list[str], list[str]]:
    """(train users, eval users): a seeded sample of ``max_users`` (all when unset), of which
    ``ceil(eval_fraction · n)`` are held out for the eval-loss file (at least one user stays
    in train). Both lists keep the input order."""
    users = list(users)
    rng = np.random.default_rng(seed)
    if max_users is not None and max_users < len(users):
        keep = set(rng.choice(len(users), size=max_users, replace=False).tolist())
        users = [u for i, u in enumerate(users) if i in keep]
    n_eval = min(math.ceil(eval_fraction * len(users)), max(len(users) - 1, 0))
    held = set(rng.permutation(len(users))[:n_eval].tolist())
    return ([u for i, u in enumerate(users) if i not in held],
            [u for i, u in enumerate(users) if i in held])
