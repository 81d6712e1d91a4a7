"""Case selection, masking and candidate sampling."""

from __future__ import annotations

import numpy as np
import pytest

from tastelens.data.splits import leave_last_out
from tastelens.errors import ConfigError
from tastelens.eval import protocols
from tastelens.eval.config import EvalConfig


def _config(**extra) -> EvalConfig:
    return EvalConfig.model_validate({"systems": [{"name": "p", "type": "popularity"}], **extra})


@pytest.fixture(scope="module")
def split(tiny_dataset):
    return leave_last_out(tiny_dataset)


def test_candidates_are_deterministic_distinct_and_unseen(tiny_dataset, split):
    cases = split.test
    a = protocols.sample_candidates(cases, tiny_dataset, 19, seed=3)
    b = protocols.sample_candidates(cases, tiny_dataset, 19, seed=3)
    c = protocols.sample_candidates(cases, tiny_dataset, 19, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (len(cases), 20)
    seen = protocols.user_items(tiny_dataset)
    for row, case in zip(a, cases):
        assert row[0] == case.target
        assert len(set(row.tolist())) == 20  # the target once, negatives distinct
        assert not set(row[1:].tolist()) & set(seen[case.user].tolist())


def test_candidates_do_not_depend_on_which_users_are_sampled(tiny_dataset, split):
    full = protocols.sample_candidates(split.test, tiny_dataset, 5, seed=0)
    part = protocols.sample_candidates(split.test[10:15], tiny_dataset, 5, seed=0)
    np.testing.assert_array_equal(full[10:15], part)


def test_negatives_are_roughly_uniform_over_unseen_items(tiny_dataset, split):
    case = split.test[0]
    seen = set(protocols.user_items(tiny_dataset)[case.user].tolist())
    counts = np.zeros(tiny_dataset.n_items)
    for seed in range(400):
        cand = protocols.sample_candidates([case], tiny_dataset, 5, seed=seed)[0, 1:]
        counts[cand] += 1
    unseen = [i for i in range(tiny_dataset.n_items) if i not in seen]
    assert counts[sorted(seen)].sum() == 0
    expected = 400 * 5 / len(unseen)
    assert counts[unseen].min() > 0.5 * expected and counts[unseen].max() < 1.5 * expected


def test_too_many_negatives_is_a_config_error(tiny_dataset, split):
    with pytest.raises(ConfigError, match="n_negatives"):
        protocols.sample_candidates(split.test, tiny_dataset, 39, seed=0)


def test_masks_cover_the_history_but_never_the_target(split):
    masks = protocols.case_masks(split.test)
    scores = np.zeros((len(masks), split.dataset.n_items))
    protocols.mask_scores(scores, masks)
    for row, case in zip(scores, split.test):
        assert set(np.flatnonzero(np.isneginf(row)).tolist()) == set(case.history.items.tolist())
        assert row[case.target] == 0.0


def test_user_sample_is_seeded_and_bounded(split):
    a = protocols.select_cases(split, _config(users={"n": 8, "seed": 2}))
    b = protocols.select_cases(split, _config(users={"n": 8, "seed": 2}))
    assert [c.user for c in a] == [c.user for c in b] and len({c.user for c in a}) == 8
    assert len(protocols.select_cases(split, _config())) == len(split.test)
    validation = protocols.select_cases(split, _config(evaluate_on="validation"))
    assert validation[0] is split.validation[0]
    with pytest.raises(ConfigError, match="users.n"):
        protocols.select_cases(split, _config(users={"n": 31}))
