"""SASRec beyond the shared contract: checkpoints and resume, early stopping, the vectors
it exposes, and (slow) its accuracy on the real MovieLens data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import build

TINY = {"hidden": 16, "layers": 1, "max_len": 16, "batch_size": 8, "lr": 0.01,
        "dropout": 0.1, "patience": 50, "progress": False, "threads": 1}


def fit(make_context, split, work_dir=None, **overrides):
    recommender = build("sasrec", {**TINY, **overrides}, make_context(work_dir))
    recommender.fit(split.train)
    return recommender


def test_resumes_from_the_last_finished_epoch(make_context, tiny_split, tiny_eval, tmp_path):
    first = fit(make_context, tiny_split, tmp_path, max_epochs=1)
    assert (first.resumed_from_epoch_, first.epochs_run_) == (0, 1)

    # As if the first run had been killed after epoch 1: same config, larger budget.
    resumed = fit(make_context, tiny_split, tmp_path, max_epochs=2)
    assert resumed.resumed_from_epoch_ == 1
    assert resumed.epochs_run_ == 1
    assert [r["epoch"] for r in resumed.history_] == [1, 2]

    # Resuming restores weights, optimizer and RNG state: same as never stopping.
    straight = fit(make_context, tiny_split, max_epochs=2)
    np.testing.assert_allclose(resumed.score(tiny_eval.histories),
                               straight.score(tiny_eval.histories), rtol=1e-5, atol=1e-6)


def test_a_finished_run_loads_without_training(make_context, tiny_split, tiny_eval, tmp_path):
    trained = fit(make_context, tiny_split, tmp_path, max_epochs=2)
    loaded = fit(make_context, tiny_split, tmp_path, max_epochs=2, progress=True)
    assert loaded.epochs_run_ == 0
    assert loaded.checkpoint_dir_ == trained.checkpoint_dir_
    np.testing.assert_array_equal(loaded.score(tiny_eval.histories),
                                  trained.score(tiny_eval.histories))


def test_other_config_or_data_trains_from_scratch(make_context, tiny_split, tmp_path):
    base = fit(make_context, tiny_split, tmp_path, max_epochs=1)
    wider = fit(make_context, tiny_split, tmp_path, max_epochs=2, hidden=24)
    assert wider.checkpoint_dir_ != base.checkpoint_dir_
    assert wider.resumed_from_epoch_ == 0
    fewer = build("sasrec", {**TINY, "max_epochs": 2}, make_context(tmp_path))
    fewer.fit(tiny_split.train.iloc[:-5])
    assert fewer.checkpoint_dir_ != base.checkpoint_dir_
    assert fewer.resumed_from_epoch_ == 0


def test_checkpoint_folder_holds_config_and_no_temporary_files(make_context, tiny_split,
                                                               tmp_path):
    model = fit(make_context, tiny_split, tmp_path, max_epochs=1)
    assert model.checkpoint_dir_.parent == tmp_path / "sasrec"
    meta = json.loads((model.checkpoint_dir_ / "meta.json").read_text())
    assert meta["config"]["hidden"] == TINY["hidden"]
    assert len(meta["data_fingerprint"]) == 64
    assert sorted(p.name for p in model.checkpoint_dir_.iterdir()) == [
        "checkpoint.pt", "done.json", "meta.json"]


def test_early_stopping_keeps_the_best_epoch(make_context, tiny_split):
    # With a vanishing learning rate validation never improves after epoch 1.
    model = fit(make_context, tiny_split, lr=1e-12, max_epochs=10, patience=2)
    assert [r["epoch"] for r in model.history_] == [1, 2, 3]
    assert model.best_epoch_ == 1


def test_sampled_softmax_trains(make_context, tiny_split, tiny_eval):
    model = fit(make_context, tiny_split, negatives=8, max_epochs=8)
    losses = [r["loss"] for r in model.history_]
    assert losses[-1] < losses[0]
    assert np.isfinite(model.score(tiny_eval.histories)).all()


def test_vectors_reproduce_the_scores(make_context, tiny_split, tiny_eval, tiny_dataset):
    model = fit(make_context, tiny_split, max_epochs=2)
    items = model.item_embeddings()
    assert items.shape == (tiny_dataset.n_items, TINY["hidden"]) and items.dtype == np.float32
    history = tiny_eval.histories[0]
    user = model.user_vector(history)
    assert user.shape == (TINY["hidden"],) and user.dtype == np.float32
    np.testing.assert_allclose(user @ items.T, model.score([history])[0], rtol=1e-4, atol=1e-5)


def test_heads_must_divide_hidden(make_context):
    with pytest.raises(ConfigError, match="must divide"):
        build("sasrec", {**TINY, "hidden": 16, "heads": 3}, make_context())


@pytest.mark.slow
def test_default_config_reaches_ndcg_on_movielens(real_data_path, tmp_path):
    from tastelens.data.movielens import load_movielens_csv
    from tastelens.data.splits import leave_last_out, masked_items
    from tastelens.eval.baselines.base import SystemContext
    from tastelens.eval.metrics import target_ranks

    split = leave_last_out(load_movielens_csv(real_data_path))
    model = build("sasrec", {"progress": False},
                  SystemContext(dataset=split.dataset, work_dir=tmp_path, seed=42))
    model.fit(split.train)
    scores = model.score([case.history for case in split.test]).astype(np.float64)
    masked = [masked_items(case) for case in split.test]
    for row, items in enumerate(masked):
        scores[row, items] = -np.inf
    ranks = target_ranks(scores, np.array([case.target for case in split.test]),
                         np.array([len(items) for items in masked]))
    ndcg = float(ranks.ndcg(10).mean())
    assert ndcg >= 0.05, f"SASRec test NDCG@10 {ndcg:.4f} < 0.05 (best epoch {model.best_epoch_})"
