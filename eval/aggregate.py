"""Turn per-case rank counts and top-K lists into metrics.json and the per-user table.

Averaging order: per case -> per user (a user with several cases counts once) -> over
users -> over seeds. Bootstrap CIs resample users, on per-user values averaged over seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tastelens.data.dataset import Dataset
from tastelens.data.splits import EvalCase, Split
from tastelens.eval import metrics as M
from tastelens.eval.bootstrap import mean_ci, paired_difference_ci
from tastelens.eval.config import EvalConfig

TIE_CONVENTION = ("expected value under a uniformly random order of tied items "
                  "(rank = items strictly above + 1 + half the other ties)")


@dataclass
class CaseScores:
    """What one (system, seed) run produced for every case, in case order."""

    ranks: M.TargetRanks
    lists: np.ndarray  # (n_cases, max k) catalog indices, -1 padded
    fit_seconds: float
    score_seconds: float
    harness_seconds: float
    diagnostics: dict[str, Any] | None = None
    """What the system's ``diagnostics()`` reported after scoring (LLM systems: invalid and
    fallback rates, latency and tokens per user; systems with a candidate stage: candidate
    recall@N); None for systems without it."""
    card: dict[str, Any] | None = None
    """The fitted system's ``card()``, shown in the report."""


def ci_metrics(ks: list[int]) -> list[str]:
    """Metrics that get bootstrap intervals."""
    return [m for k in ks for m in (f"ndcg@{k}", f"recall@{k}")] + ["mrr"]


def _user_mean(values: np.ndarray, codes: np.ndarray, n_users: int) -> np.ndarray:
    """Mean per user, ignoring NaN cases; NaN for a user with no finite value."""
    ok = np.isfinite(values)
    sums = np.bincount(codes[ok], weights=values[ok], minlength=n_users)
    counts = np.bincount(codes[ok], minlength=n_users)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def case_metrics(run: CaseScores, ks: list[int], vectors: np.ndarray,
                 popularity: np.ndarray) -> dict[str, np.ndarray]:
    """Per-case metric arrays of one (system, seed) run."""
    out: dict[str, np.ndarray] = {"rank": run.ranks.rank()}
    for k in ks:
        out[f"ndcg@{k}"] = run.ranks.ndcg(k)
        out[f"recall@{k}"] = run.ranks.hit(k)
    out["rr"] = run.ranks.rr()
    for k in ks:
        out[f"ild@{k}"] = M.intra_list_diversity(run.lists[:, :k], vectors)
        out[f"novelty@{k}"] = M.novelty(run.lists[:, :k], popularity)
    out["informative"] = run.ranks.informative().astype(np.float64)
    return out


def _system_entry(per_seed: list[dict[str, float]], ks: list[int]) -> dict[str, Any]:
    mean = {key: float(np.mean([s[key] for s in per_seed])) for key in per_seed[0]}
    entry: dict[str, Any] = {}
    for k in ks:
        entry[f"ndcg@{k}"] = mean[f"ndcg@{k}"]
        entry[f"recall@{k}"] = mean[f"recall@{k}"]
        entry[f"hr@{k}"] = mean[f"recall@{k}"]  # one held-out item: HR@K == Recall@K
    entry["mrr"] = mean["rr"]
    entry.update({f"coverage@{k}": mean[f"coverage@{k}"] for k in ks})
    # "coverage" is catalog coverage at the headline cutoff (the first k); the share of users
    # who got an informative (not all-tied) ranking is reported as "user_coverage".
    entry["coverage"] = mean[f"coverage@{ks[0]}"]
    entry["user_coverage"] = mean["informative"]
    entry.update({f"ild@{k}": mean[f"ild@{k}"] for k in ks})
    entry.update({f"novelty@{k}": mean[f"novelty@{k}"] for k in ks})
    entry["mean_rank"] = mean["rank"]
    for key in ("fit_seconds", "score_seconds", "harness_seconds"):
        entry[key] = mean[key]
    if len(per_seed) > 1:
        # Spread over seeds of the headline metrics (sample standard deviation).
        sources = {**{m: m for k in ks for m in (f"ndcg@{k}", f"recall@{k}")}, "mrr": "rr"}
        entry["std"] = {out: float(np.std([s[src] for s in per_seed], ddof=1))
                        for out, src in sources.items()}
    return entry


def aggregate(config: EvalConfig, dataset: Dataset, split: Split, cases: list[EvalCase],
              runs: dict[str, list[CaseScores]], *, resources_seconds: float = 0.0
              ) -> tuple[dict[str, Any], pd.DataFrame]:
    """(metrics.json content, per-user table) from every system's per-seed runs."""
    ks = list(config.metrics.k)
    vectors = M.category_vectors(dataset)
    popularity = M.item_popularity(split.train, dataset)
    codes, users = pd.factorize(pd.Series([case.user for case in cases]))
    n_users = len(users)
    targets = [dataset.item_ids[case.target] for case in cases]

    systems: dict[str, dict[str, Any]] = {}
    per_user_values: dict[str, dict[str, np.ndarray]] = {}
    frames = []
    for name, seed_runs in runs.items():
        per_seed, user_vals = [], []
        for seed, run in zip(config.seeds, seed_runs):
            per_case = case_metrics(run, ks, vectors, popularity)
            by_user = {key: _user_mean(v, codes, n_users) for key, v in per_case.items()}
            summary = {key: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
                       for key, v in by_user.items()}
            summary.update({f"coverage@{k}": M.catalog_coverage(run.lists[:, :k], dataset.n_items)
                            for k in ks})
            summary.update(fit_seconds=run.fit_seconds, score_seconds=run.score_seconds,
                           harness_seconds=run.harness_seconds)
            per_seed.append(summary)
            user_vals.append(by_user)
            frame = pd.DataFrame({"user": [case.user for case in cases], "system": name,
                                  "seed": seed, "target": targets})
            for key in ["rank", *[f"{m}@{k}" for k in ks for m in ("ndcg", "recall")], "rr"]:
                frame[key] = per_case[key]
            frames.append(frame)
        systems[name] = _system_entry(per_seed, ks)
        diagnostics = merge_diagnostics([run.diagnostics for run in seed_runs])
        if diagnostics is not None:
            systems[name]["diagnostics"] = diagnostics
        if seed_runs and seed_runs[0].card is not None:
            systems[name]["card"] = seed_runs[0].card
        per_user_values[name] = {
            ("mrr" if key == "rr" else key): np.mean([u[key] for u in user_vals], axis=0)
            for key in ["rr", *[f"{m}@{k}" for k in ks for m in ("ndcg", "recall")]]}

    _add_intervals(config, systems, per_user_values, ks)
    protocol = _protocol(config, dataset, split, cases, n_users, resources_seconds)
    per_user = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return {"protocol": protocol, "systems": systems}, per_user


def merge_diagnostics(per_seed: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """One diagnostics dict per system: numbers averaged over the seeds that reported them,
    anything else taken from the first seed; None when no seed reported any."""
    reported = [d for d in per_seed if d]
    if not reported:
        return None
    out: dict[str, Any] = {}
    for key in dict.fromkeys(k for d in reported for k in d):
        values = [d[key] for d in reported if key in d]
        numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if len(numbers) == len(values) and len(values) > 1:
            out[key] = float(np.mean(numbers))
        else:
            out[key] = values[0]
    return out


def _add_intervals(config: EvalConfig, systems: dict[str, dict[str, Any]],
                   values: dict[str, dict[str, np.ndarray]], ks: list[int]) -> None:
    b = config.bootstrap
    opts = dict(n_resamples=b.n_resamples, confidence=b.confidence, seed=b.seed)
    for name, entry in systems.items():
        entry["mean_ci"] = {}
        for metric in ci_metrics(ks):
            iv = mean_ci(values[name][metric], **opts)
            entry["mean_ci"][metric] = {"mean": iv.delta, "low": iv.low, "high": iv.high}
        if b.reference is None or name == b.reference:
            continue
        entry["ci"] = {metric: paired_difference_ci(values[name][metric],
                                                    values[b.reference][metric], **opts).as_dict()
                       for metric in ci_metrics(ks)}
    for name, other in b.pairs:
        systems[name].setdefault("ci_vs", {})[other] = {
            metric: paired_difference_ci(values[name][metric], values[other][metric],
                                         **opts).as_dict() for metric in ci_metrics(ks)}


def _protocol(config: EvalConfig, dataset: Dataset, split: Split, cases: list[EvalCase],
              n_users: int, resources_seconds: float) -> dict[str, Any]:
    p: dict[str, Any] = {
        "dataset": dataset.name,
        "source": str(dataset.source) if dataset.source else None,
        "n_items": dataset.n_items,
        "n_interactions": int(len(dataset.interactions)),
        "n_train_interactions": int(len(split.train)),
        "split": config.split.kind,
        "split_skipped_users": dict(split.skipped),
        "evaluate_on": config.evaluate_on,
        "protocol": config.protocol.kind,
        "users": n_users,
        "cases": len(cases),
        "user_sample": config.users.model_dump(),
        "seeds": list(config.seeds),
        "k": list(config.metrics.k),
        "reference": config.bootstrap.reference,
        "bootstrap": config.bootstrap.model_dump(exclude={"reference"}),
        "ties": TIE_CONVENTION,
        "systems": [spec.model_dump() for spec in config.systems],
        "resources_seconds": round(resources_seconds, 3),
    }
    if config.split.kind == "temporal":
        p["split_fractions"] = {"test": config.split.test_fraction,
                                "validation": config.split.validation_fraction}
    if config.protocol.kind == "candidates":
        p["n_negatives"] = config.protocol.n_negatives
        p["candidate_seed"] = config.protocol.seed
    return p
