"""The learned ranker's training cases: cut points that hold out each user's newest events,
and cold-start cases (a few liked events, or stated categories only)."""

from __future__ import annotations

import numpy as np

from tastelens.finetune.ranker_examples import UserLog, cold_cases, cut_cases


def log(user: str, n: int) -> UserLog:
    return UserLog(user, np.arange(n), np.full(n, 4.0), np.arange(n) * 10)


def test_cut_cases_hold_out_the_newest_events() -> None:
    early, cases = cut_cases([log("a", 8), log("b", 4)], cuts=3, min_history=2)
    assert [len(e) for e in early] == [5, 1]
    a = [c for c in cases if c.log.user == "a"]
    assert [(c.stop, c.target) for c in a] == [(5, 5), (6, 6), (7, 7)]
    # "b" keeps one event; its cases need 2 events of history: positions 2 and 3 only.
    assert [(c.stop, c.target) for c in cases if c.log.user == "b"] == [(2, 2), (3, 3)]
    for c in cases:  # no target is in the early part the models are fitted on
        early_items = next(e for e in early if e.user == c.log.user).items
        assert c.target not in early_items and c.history.tolist() == list(range(c.stop))


def test_cold_cases_keep_the_target_and_a_few_liked_events() -> None:
    logs = [UserLog(u, np.arange(10) + 10 * k, np.array([5, 1, 5, 1, 5, 1, 5, 1, 5, 4.0]),
                    np.arange(10) * 10) for k, u in enumerate(["a", "b", "c", "d"])]
    dataset = make_dataset_for(logs)
    _, cases = cut_cases(logs, cuts=3, min_history=2)
    cold = cold_cases(cases, dataset, per_user=3, sizes=[0, 1, 3], stated_share=0.5, seed=7)
    assert cold == cold_cases(cases, dataset, per_user=3, sizes=[0, 1, 3], stated_share=0.5,
                              seed=7)  # seeded
    assert len(cold) == 12 and all(c.cold for c in cold)
    for c in cold:
        newest = max(x.stop for x in cases if x.log.user == c.log.user)
        assert c.stop == newest and c.target == int(c.log.items[newest])
        # liked: rated at least the mean (5.0) before the target, oldest first
        assert all(c.log.ratings[p] == 5.0 and p < c.stop for p in c.picks)
        assert list(c.picks) == sorted(c.picks) and len(c.history) == len(c.picks)
        assert c.picks or c.stated  # an empty history always states categories
        assert set(c.stated) <= {"A", "B"}


def make_dataset_for(logs: list[UserLog]):  # noqa: ANN201
    from tastelens.data.dataset import Dataset
    from tastelens.schemas import Item

    n = int(max(log.items.max() for log in logs)) + 1
    items = {str(i): Item(id=str(i), title=f"Item {i}", categories=("A" if i % 2 else "B",))
             for i in range(n)}
    rows = [(log.user, str(i), float(r), int(t)) for log in logs
            for i, r, t in zip(log.items, log.ratings, log.timestamps)]
    import pandas as pd

    frame = pd.DataFrame(rows, columns=["user", "item", "rating", "timestamp"])
    return Dataset(name="cold", items=items, interactions=frame)
