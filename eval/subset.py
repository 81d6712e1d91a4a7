"""The subset protocol of LLM re-ranking papers, read from a finished full-catalog run.

LLM re-rankers are usually reported on the users whose held-out item is among the candidates
the LLM is shown (LlamaRec: the retriever's top 20): there, the re-ranker alone decides the
rank, so the comparison isolates the ranking model. :func:`subset_report` takes a run's
``per_user.parquet`` (full protocol), keeps the users whose target the ``by`` system (the
pipeline's retrieval order) placed in its first ``top`` items, and reports every system's
NDCG@K and MRR on exactly those users, with paired bootstrap intervals for the asked pairs
(:mod:`tastelens.eval.bootstrap`).

For re-rankers that only permute the first ``top`` candidates (the ``rerank-score`` rows,
with or without an adapter) the full-catalog rank of a subset user's target is its rank
among those candidates, so the numbers are the subset protocol's. A learned ranker orders
all retrieved candidates, so on the subset it can also lose the target below the first
``top``: its rows are the whole system measured on the same users.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tastelens.errors import ConfigError
from tastelens.eval.bootstrap import mean_ci, paired_difference_ci


def read_per_user(run_dir: Path) -> pd.DataFrame:
    path = Path(run_dir) / "per_user.parquet"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no per_user.parquet (expected the folder of a finished "
                          "`tastelens eval run`)")
    return pd.read_parquet(path)


def subset_report(per_user: pd.DataFrame, *, by: str, top: int, k: int = 10,
                  pairs: Sequence[tuple[str, str]] = (), n_resamples: int = 1000,
                  confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Metrics of every system on the users whose target ``by`` ranked within ``top``
    (first seed of the run). Raises ConfigError naming a missing system or metric."""
    column = f"ndcg@{k}"
    if column not in per_user.columns:
        raise ConfigError(f"the run has no {column} (its metrics.k lists "
                          f"{sorted(c for c in per_user.columns if c.startswith('ndcg@'))})")
    rows = per_user[per_user["seed"] == per_user["seed"].min()]
    systems = list(dict.fromkeys(rows["system"]))
    for name in [by, *(x for pair in pairs for x in pair)]:
        if name not in systems:
            raise ConfigError(f"system {name!r} is not in the run (it has {systems})")
    table = {name: frame.set_index("user") for name, frame in rows.groupby("system")}
    ref = table[by]
    users = sorted(ref.index[ref["rank"] <= top])  # 1-based mid-rank within the first `top`
    if not users:
        raise ConfigError(f"no user's target is within {by!r}'s first {top} items")
    out: dict[str, Any] = {"by": by, "top": top, "k": k, "users": len(users),
                           "of_users": int(len(ref)), "systems": {}, "pairs": {}}

    def values(name: str, metric: str) -> np.ndarray:
        return table[name].loc[users, metric].to_numpy(dtype=np.float64)

    for name in systems:
        if not set(users) <= set(table[name].index):
            continue  # a system run on other users (e.g. --users) is left out
        ndcg, rr = values(name, column), values(name, "rr")
        out["systems"][name] = {
            column: mean_ci(ndcg, n_resamples=n_resamples, confidence=confidence,
                            seed=seed).as_dict(),
            "mrr": mean_ci(rr, n_resamples=n_resamples, confidence=confidence,
                           seed=seed).as_dict()}
    for a, b in pairs:
        out["pairs"][f"{a} - {b}"] = {
            metric: paired_difference_ci(values(a, src), values(b, src),
                                         n_resamples=n_resamples, confidence=confidence,
                                         seed=seed).as_dict()
            for metric, src in ((column, column), ("mrr", "rr"))}
    return out


def subset_markdown(report: dict[str, Any]) -> str:
    """The report as a Markdown table plus one line per pair (* = interval excludes 0)."""
    k = report["k"]
    lines = [f"Subset: {report['users']} of {report['of_users']} users whose test item is in "
             f"`{report['by']}`'s first {report['top']}.", "",
             f"| system | NDCG@{k} [95% CI] | MRR [95% CI] |", "|---|---|---|"]
    for name, m in report["systems"].items():
        cells = [f"{v['delta']:.4f} [{v['low']:.4f}, {v['high']:.4f}]"
                 for v in (m[f"ndcg@{k}"], m["mrr"])]
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    if report["pairs"]:
        lines.append("")
    for pair, m in report["pairs"].items():
        parts = []
        for metric, v in m.items():
            star = "*" if not (v["low"] <= 0.0 <= v["high"]) else ""
            parts.append(f"{metric} {v['delta']:+.4f} [{v['low']:+.4f}, {v['high']:+.4f}]{star}")
        lines.append(f"- {pair}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"
