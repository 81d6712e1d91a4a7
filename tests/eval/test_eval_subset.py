"""The subset protocol read from a run's per-user rows: who is in the subset, every system's
metrics on exactly those users, paired intervals, and named mistakes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tastelens.cli.main import app
from tastelens.errors import ConfigError
from tastelens.eval.subset import subset_markdown, subset_report


def rows(system: str, ranks: list[float], seed: int = 42) -> list[dict]:
    return [{"user": str(u), "system": system, "seed": seed, "target": "t", "rank": r,
             "ndcg@10": 1 / np.log2(r + 1) if r <= 10 else 0.0, "rr": 1 / r}
            for u, r in enumerate(ranks)]


RETRIEVAL = [1, 5, 20, 21, 300, 2]
LLM = [2, 1, 3, 40, 300, 1]      # better than retrieval on the 4 subset users: 0, 1, 2, 5
BASE = [1, 5, 20, 21, 300, 2]


@pytest.fixture()
def per_user() -> pd.DataFrame:
    frame = rows("retrieval", RETRIEVAL) + rows("llm-adapter", LLM) + rows("llm", BASE)
    return pd.DataFrame(frame + rows("retrieval", [1] * 6, seed=43))  # 2nd seed ignored


def test_only_users_with_the_target_in_the_first_top_count(per_user):
    report = subset_report(per_user, by="retrieval", top=20, pairs=[("llm-adapter", "llm")],
                           n_resamples=200)
    assert report["users"] == 4 and report["of_users"] == 6
    subset = [0, 1, 2, 5]
    expect = np.mean([1 / LLM[u] for u in subset])
    assert report["systems"]["llm-adapter"]["mrr"]["delta"] == pytest.approx(expect)
    assert report["systems"]["retrieval"]["ndcg@10"]["delta"] == pytest.approx(
        np.mean([1 / np.log2(RETRIEVAL[u] + 1) if RETRIEVAL[u] <= 10 else 0 for u in subset]))
    pair = report["pairs"]["llm-adapter - llm"]["mrr"]
    assert pair["delta"] == pytest.approx(expect - np.mean([1 / BASE[u] for u in subset]))
    assert pair["low"] <= pair["delta"] <= pair["high"]
    text = subset_markdown(report)
    assert "4 of 6 users" in text and "| llm-adapter |" in text and "llm-adapter - llm" in text


def test_mistakes_are_named(per_user):
    with pytest.raises(ConfigError, match="'nope' is not in the run"):
        subset_report(per_user, by="nope", top=20)
    with pytest.raises(ConfigError, match="no ndcg@5"):
        subset_report(per_user, by="retrieval", top=20, k=5)
    with pytest.raises(ConfigError, match="within 'llm'"):
        subset_report(per_user[per_user["rank"] > 1], by="llm", top=1)


def test_cli_writes_json_and_markdown(per_user, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    per_user.to_parquet(run / "per_user.parquet", index=False)
    out = tmp_path / "subset.json"
    result = CliRunner().invoke(app, ["eval", "subset", str(run), "--pair", "llm-adapter:llm",
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "4 of 6 users" in result.output and out.is_file()
    assert out.with_suffix(".md").read_text().startswith("Subset: 4 of 6")
    bad = CliRunner().invoke(app, ["eval", "subset", str(run), "--pair", "llm"])
    assert bad.exit_code == 1 and "SYSTEM:REFERENCE" in bad.output
    missing = CliRunner().invoke(app, ["eval", "subset", str(tmp_path)])
    assert missing.exit_code == 1 and "per_user.parquet" in missing.output
