"""System diagnostics in metrics.json / report.md, the sampled-users note, and the run's
shared resources (the lazily built LLM backend is built once, only when used, and closed)."""

from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from tastelens.config.settings import Settings
from tastelens.eval.aggregate import merge_diagnostics
from tastelens.eval.baselines.base import Recommender, register
from tastelens.eval.config import EvalConfig
from tastelens.eval.harness import EvalError, evaluate, run_eval
from tastelens.eval.report import diagnostics_rows, render_markdown
from tastelens.eval.resources import SharedResources
from tastelens.llm.base import user
from tastelens.llm.fake import FakeBackend


@register
class ChattySystem(Recommender):
    """Scores at random and reports made-up LLM diagnostics that depend on the seed."""

    name = "test-chatty"
    needs = ("llm",)
    backends: list = []

    def fit(self, train: pd.DataFrame) -> None:
        self.users = 0

    def score(self, histories: Sequence) -> np.ndarray:
        self.users += len(histories)
        rng = np.random.default_rng(self.context.seed)
        return rng.random((len(histories), self.context.dataset.n_items)).astype(np.float32)

    def diagnostics(self) -> dict:
        return {"n_users": self.users, "invalid_rate": 0.001 * self.context.seed,
                "fallback_rate": 0.25, "latency_per_user_s": 1.5,
                "prompt_tokens_per_user": 100.0, "completion_tokens_per_user": 7.0,
                "backend": "fake"}


@register
class LLMCallingSystem(ChattySystem):
    """Asks the shared LLM once per score() call."""

    name = "test-llm-calling"

    def score(self, histories: Sequence) -> np.ndarray:
        backend = self.context.resource("llm")
        type(self).backends.append(backend)
        backend.generate([user("hello")])
        return super().score(histories)


@register
class BadDiagnostics(ChattySystem):
    name = "test-bad-diagnostics"

    def diagnostics(self):  # type: ignore[override]
        return [1, 2]


def _config(*systems: tuple[str, str], **extra) -> EvalConfig:
    raw = {"systems": [{"name": n, "type": t} for n, t in systems],
           "metrics": {"k": [10]}, "bootstrap": {"n_resamples": 50}, **extra}
    return EvalConfig.model_validate(raw)


@pytest.fixture()
def settings(tmp_path) -> Settings:
    return Settings(cache_dir=tmp_path / "cache", embedder={"model": "hashing"},
                    llm={"backend": "fake"})


def test_diagnostics_reach_metrics_json_and_report(tiny_dataset, settings, tmp_path):
    config = _config(("chatty", "test-chatty"), ("pop", "popularity"),
                     users={"n": 12, "seed": 3})
    out = tmp_path / "run"
    run_eval(config, settings, out_dir=out, dataset=tiny_dataset)
    metrics = json.loads((out / "metrics.json").read_text())
    diag = metrics["systems"]["chatty"]["diagnostics"]
    assert diag["n_users"] == 12 and diag["invalid_rate"] == pytest.approx(0.042)  # seed 42
    assert "diagnostics" not in metrics["systems"]["pop"]
    report = (out / "report.md").read_text()
    assert "## Diagnostics" in report
    row = next(line for line in report.splitlines() if line.startswith("| chatty |")
               and "%" in line)
    assert "4.2%" in row and "25.0%" in row and "1.50" in row and "| fake |" in row
    assert "| pop |" in report.split("## Diagnostics")[0]
    assert "| pop |" not in report.split("## Diagnostics")[1].split("##")[0]
    # The sample is stated up front, with its size and seed.
    assert "random sample of 12 users (users.n = 12, seed 3)" in report


def test_no_diagnostics_section_without_reporting_systems(tiny_dataset, settings):
    metrics = evaluate(_config(("pop", "popularity")), settings, dataset=tiny_dataset).metrics
    assert diagnostics_rows(metrics)[1] == []
    report = render_markdown(metrics)
    assert "## Diagnostics" not in report and "random sample" not in report


def test_diagnostics_are_averaged_over_seeds(tiny_dataset, settings):
    metrics = evaluate(_config(("chatty", "test-chatty"), seeds=[1, 3]), settings,
                       dataset=tiny_dataset).metrics
    diag = metrics["systems"]["chatty"]["diagnostics"]
    assert diag["invalid_rate"] == pytest.approx(0.002) and diag["backend"] == "fake"
    assert diag["n_users"] == 30


def test_merge_diagnostics_keeps_first_non_numbers_and_skips_missing():
    assert merge_diagnostics([None, None]) is None
    merged = merge_diagnostics([{"a": 1, "s": "x"}, None, {"a": 3, "s": "y", "b": 2}])
    assert merged == {"a": 2.0, "s": "x", "b": 2}


def test_diagnostics_that_are_not_a_dict_are_an_error(tiny_dataset, settings):
    with pytest.raises(EvalError, match="'bad'.*diagnostics"):
        evaluate(_config(("bad", "test-bad-diagnostics")), settings, dataset=tiny_dataset)


def test_llm_resource_is_lazy_built_once_and_closed(tiny_dataset, settings, monkeypatch):
    made: list[FakeBackend] = []

    def create(s):
        backend = FakeBackend(responder=lambda request: "hi")
        made.append(backend)
        return backend

    monkeypatch.setattr("tastelens.llm.registry.create_backend", create)
    # Declared but never used: nothing is built.
    evaluate(_config(("chatty", "test-chatty")), settings, dataset=tiny_dataset)
    assert made == []
    LLMCallingSystem.backends = []
    evaluate(_config(("a", "test-llm-calling"), ("b", "test-llm-calling"), batch_size=10),
             settings, dataset=tiny_dataset)
    assert len(made) == 1 and made[0].closed
    # One backend for the run, behind the run's reply cache.
    assert len(LLMCallingSystem.backends) == 6
    assert {id(b.inner) for b in LLMCallingSystem.backends} == {id(made[0])}
    assert len({id(b) for b in LLMCallingSystem.backends}) == 1


def test_given_llm_is_used_and_left_open(tiny_dataset, settings, monkeypatch):
    monkeypatch.setattr("tastelens.llm.registry.create_backend",
                        lambda s: pytest.fail("the given backend should be used"))
    mine = FakeBackend(responder=lambda request: "hi")
    evaluate(_config(("a", "test-llm-calling")), settings, dataset=tiny_dataset,
             resources={"llm": mine})
    assert mine.stats.requests == 1 and not mine.closed


def test_shared_resources_close_what_they_built_even_after_errors():
    class Closing:
        def __init__(self, fail: bool = False) -> None:
            self.closed, self.fail = False, fail

        def close(self) -> None:
            self.closed = True
            if self.fail:
                raise RuntimeError("close failed")

    given = Closing()
    resources = SharedResources({"given": given})
    resources.add_lazy("a", lambda: Closing(fail=True))
    resources.add_lazy("b", Closing)
    resources.add_lazy("unused", lambda: pytest.fail("never built"))
    assert "a" in resources and len(resources) == 4 and not resources.built("a")
    a, b = resources["a"], resources["b"]
    assert resources["a"] is a and resources.built("a")
    with pytest.raises(KeyError):
        resources["missing"]
    with pytest.raises(RuntimeError, match="close failed"):
        resources.close()
    assert a.closed and b.closed and not given.closed
