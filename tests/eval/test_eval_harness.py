"""The harness end to end on the tiny synthetic dataset, with toy systems registered here:
an oracle (knows the held-out target), the worst possible system, a constant scorer, one
that fails, and one that needs the shared item index."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from tastelens.config.settings import Settings
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import Recommender, register
from tastelens.eval.config import EvalConfig
from tastelens.eval.harness import EvalError, evaluate, run_eval

FILES = {"metrics.json", "report.md", "metrics.png", "per_user.parquet", "run.json"}
SYSTEM_KEYS = {"ndcg@10", "recall@10", "hr@10", "ndcg@5", "recall@5", "hr@5", "mrr",
               "coverage@10", "coverage@5", "coverage", "user_coverage", "ild@10", "ild@5",
               "novelty@10",
               "novelty@5", "fit_seconds", "score_seconds", "mean_ci"}


class _Peek(Recommender):
    """Knows each user's full chronology, so it knows which item comes after a history."""

    sign = 1.0
    fits = 0

    def fit(self, train: pd.DataFrame) -> None:
        type(self).fits += 1
        ds = self.context.dataset
        self.order = {u: ds.user_events(u)["item"].map(ds.item_index).to_numpy()
                      for u in ds.user_ids}

    def score(self, histories: Sequence) -> np.ndarray:
        out = np.zeros((len(histories), self.context.dataset.n_items), dtype=np.float32)
        for row, h in enumerate(histories):
            out[row] = -self.sign  # everything else ties below (or above) the target
            out[row, self.order[h.user][len(h)]] = self.sign
        return out


@register
class OracleSystem(_Peek):
    name = "test-oracle"


@register
class WorstSystem(_Peek):
    name = "test-worst"
    sign = -1.0


@register
class ConstantSystem(Recommender):
    name = "test-constant"

    def fit(self, train: pd.DataFrame) -> None:
        pass

    def score(self, histories: Sequence) -> np.ndarray:
        return np.zeros((len(histories), self.context.dataset.n_items), dtype=np.float32)


@register
class FailingSystem(ConstantSystem):
    name = "test-failing"

    def fit(self, train: pd.DataFrame) -> None:
        raise RuntimeError("boom")


@register
class IndexUser(ConstantSystem):
    name = "test-needs-index"
    needs = ("item_index",)

    def fit(self, train: pd.DataFrame) -> None:
        index = self.context.resource("item_index")
        self.vectors = index.embeddings(self.context.dataset.item_ids)

    def item_embeddings(self) -> np.ndarray:
        return self.vectors


def _test_histories(dataset):
    """Distinct items each user saw before their last event (what full ranking masks)."""
    return [set(dataset.user_events(u)["item"].iloc[:-1]) for u in dataset.user_ids]


def _config(*systems: tuple[str, str], reference: str | None = None, **extra) -> EvalConfig:
    raw = {"systems": [{"name": n, "type": t} for n, t in systems],
           "metrics": {"k": [10, 5]}, "bootstrap": {"reference": reference, "n_resamples": 200},
           **extra}
    return EvalConfig.model_validate(raw)


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", embedder={"model": "hashing"})


def test_full_protocol_end_to_end(tiny_dataset, settings, tmp_path):
    config = _config(("oracle", "test-oracle"), ("worst", "test-worst"),
                     ("constant", "test-constant"), ("pop", "popularity"), reference="constant")
    out = tmp_path / "run"
    result = run_eval(config, settings, out_dir=out, dataset=tiny_dataset)
    assert result.out_dir == out and {p.name for p in out.iterdir()} == FILES

    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics) == {"protocol", "systems"} and metrics == result.metrics
    systems = metrics["systems"]
    assert list(systems) == ["oracle", "worst", "constant", "pop"]
    for name, entry in systems.items():
        assert SYSTEM_KEYS <= set(entry), name
        assert ("ci" in entry) == (name != "constant")
    oracle, worst, constant = systems["oracle"], systems["worst"], systems["constant"]
    assert oracle["ndcg@10"] == oracle["mrr"] == oracle["recall@5"] == 1.0
    assert worst["ndcg@10"] == worst["recall@10"] == 0.0
    assert oracle["user_coverage"] == 1.0 and constant["user_coverage"] == 0.0

    # The constant scorer gets exactly the random expectation: K / items left to rank.
    split_users = metrics["protocol"]["users"]
    assert split_users == 30 and metrics["protocol"]["cases"] == 30
    per_user = pd.read_parquet(out / "per_user.parquet")
    assert {"user", "system", "seed", "target", "rank", "ndcg@10", "recall@10", "rr"} \
        <= set(per_user.columns)
    const_rows = per_user[per_user.system == "constant"]
    # A full tie puts the target at mid-rank (n + 1) / 2 of the n unmasked items.
    n_ranked = 2 * const_rows["rank"].to_numpy() - 1
    history_sizes = np.array([len(c) for c in _test_histories(tiny_dataset)])
    np.testing.assert_allclose(np.sort(n_ranked), np.sort(40 - history_sizes))
    assert constant["hr@10"] == pytest.approx(np.mean(10 / n_ranked))

    ci = oracle["ci"]["ndcg@10"]
    assert ci["low"] > 0 and ci["delta"] == pytest.approx(1.0 - constant["ndcg@10"])
    assert worst["ci"]["mrr"]["high"] < 0
    report = (out / "report.md").read_text()
    for name in systems:
        assert f"| {name} |" in report
    assert "leave-last-out" in report and "Commit:" in report
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["systems"][0] == {"name": "oracle", "type": "test-oracle", "params": {},
                                         "history_limit": None}
    assert "git_commit" in run and "packages" in run
    assert (out / "metrics.png").read_bytes()[:4] == b"\x89PNG"


def test_candidates_protocol(tiny_dataset, settings):
    config = _config(("oracle", "test-oracle"), ("worst", "test-worst"),
                     ("constant", "test-constant"),
                     protocol={"kind": "candidates", "n_negatives": 19})
    systems = evaluate(config, settings, dataset=tiny_dataset).metrics["systems"]
    assert systems["oracle"]["ndcg@10"] == 1.0
    assert systems["worst"]["mrr"] == pytest.approx(1 / 20)
    assert systems["constant"]["hr@10"] == pytest.approx(10 / 20)
    assert systems["constant"]["hr@5"] == pytest.approx(5 / 20)


def test_validation_cases_user_sample_and_seeds(tiny_dataset, settings):
    config = _config(("random", "random"), ("oracle", "test-oracle"), evaluate_on="validation",
                     users={"n": 7, "seed": 1}, seeds=[1, 2])
    result = evaluate(config, settings, dataset=tiny_dataset)
    assert result.metrics["protocol"]["users"] == 7
    assert result.metrics["protocol"]["seeds"] == [1, 2]
    assert set(result.metrics["systems"]["random"]["std"]) >= {"ndcg@10", "mrr"}
    assert len(result.per_user) == 2 * 2 * 7
    again = evaluate(config, settings, dataset=tiny_dataset)
    assert again.metrics["systems"]["random"]["mrr"] == result.metrics["systems"]["random"]["mrr"]


def test_failing_system_leaves_no_out_dir(tiny_dataset, settings, tmp_path):
    config = _config(("constant", "test-constant"), ("broken", "test-failing"))
    out = tmp_path / "runs" / "x"
    with pytest.raises(RuntimeError, match="boom") as err:
        run_eval(config, settings, out_dir=out, dataset=tiny_dataset)
    assert any("broken" in note for note in err.value.__notes__)
    assert not out.exists()
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_scores_and_unknown_types_are_named(tiny_dataset, settings, tmp_path, monkeypatch):
    config = _config(("constant", "test-constant"), ("typo", "test-constnt"))
    before = OracleSystem.fits
    with pytest.raises(ConfigError, match=r"systems\.1\.type.*test-constnt"):
        evaluate(config, settings, dataset=tiny_dataset)
    with pytest.raises(ConfigError, match=r"systems\.0\.params"):
        evaluate(EvalConfig.model_validate(
            {"systems": [{"name": "e", "type": "ease", "params": {"l2": -1}}]}),
            settings, dataset=tiny_dataset)
    assert OracleSystem.fits == before

    monkeypatch.setattr(ConstantSystem, "score",
                        lambda self, h: np.zeros((len(h), 3), dtype=np.float32))
    with pytest.raises(EvalError, match="'constant'.*shape"):
        evaluate(_config(("constant", "test-constant")), settings, dataset=tiny_dataset)


def test_shared_item_index_and_behaviour_publishing(tiny_dataset, settings):
    config = _config(("indexed", "test-needs-index"), publish_behaviour=True)
    result = evaluate(config, settings, dataset=tiny_dataset)
    assert result.metrics["systems"]["indexed"]["user_coverage"] == 0.0
    assert any("published 40 behaviour vectors" in n for n in result.notes)
    from tastelens.vectorstore.collection import BehaviourIndex

    index = BehaviourIndex.for_dataset(settings, tiny_dataset.name, "indexed")
    assert index.count() == 40


def test_temporal_split_is_wired(tiny_dataset, settings):
    config = _config(("oracle", "test-oracle"), split={"kind": "temporal", "test_fraction": 0.3})
    metrics = evaluate(config, settings, dataset=tiny_dataset).metrics
    p = metrics["protocol"]
    assert p["split"] == "temporal" and p["split_fractions"]["test"] == 0.3
    assert p["users"] >= 1 and p["split_skipped_users"]
    assert metrics["systems"]["oracle"]["mrr"] == 1.0
