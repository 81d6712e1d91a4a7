"""Run an evaluation config: split, fit every system, score in batches, aggregate, write.

:func:`evaluate` computes everything in memory and returns an :class:`EvalResult`;
:func:`write_run` writes it into a staged folder that becomes the out dir in one rename, so a
run that fails anywhere leaves no partial report behind. :func:`run_eval` does both.

Per case (one held-out target each) the harness keeps the target's rank counts
(:mod:`tastelens.eval.metrics` explains the tie convention) and the top-K list. Metrics are
averaged per user first, then over users, then over seeds; the bootstrap resamples users.
Systems always fit on ``split.train``.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from tastelens.config.base import validation_problems
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset, History
from tastelens.data.splits import EvalCase
from tastelens.errors import ConfigError, TastelensError
from tastelens.eval import metrics as M
from tastelens.eval import protocols
from tastelens.eval.aggregate import CaseScores, aggregate
from tastelens.eval.baselines.base import Recommender, SystemContext, build, registered
from tastelens.eval.config import EvalConfig, SystemSpec
from tastelens.eval.resources import SharedResources
from tastelens.fsutil import atomic_write_json, staged_dir
from tastelens.runinfo import git_commit, run_record

Progress = Callable[[str, int, int], None]
"""Called as ``progress(label, done, total)``: cases scored so far for one system run."""


class EvalError(TastelensError):
    """A system misbehaved during an evaluation (wrong score shape, NaN, failed fit)."""


@dataclass
class EvalResult:
    """Everything a run computed; ``metrics`` is exactly what metrics.json holds."""

    config: EvalConfig
    metrics: dict[str, Any]
    per_user: pd.DataFrame
    record: dict[str, Any]
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def load_dataset_for(config: EvalConfig, settings: Settings) -> Dataset:
    """The dataset the config names (path > settings `data` > cached download), with its
    side information (config `dataset.side_info` > settings `side_info`)."""
    from tastelens.data import load_for_settings

    return load_for_settings(settings, config.dataset.path, side_info=config.dataset.side_info)


def check_systems(config: EvalConfig) -> dict[str, type[Recommender]]:
    """Validate every system's type and params before anything is fitted."""
    known = registered()
    classes = {}
    for i, spec in enumerate(config.systems):
        if spec.type not in known:
            raise ConfigError(f"{config.where(f'systems.{i}.type')}: unknown system type "
                              f"{spec.type!r} (system {spec.name!r}); "
                              f"known: {', '.join(sorted(known))}")
        cls = known[spec.type]
        try:
            cls.Config.model_validate(spec.params)
        except ValidationError as exc:
            problems = "; ".join(f"{key}: {msg}" for key, msg in validation_problems(exc))
            raise ConfigError(f"{config.where(f'systems.{i}.params')}: invalid params for "
                              f"{spec.type!r} (system {spec.name!r}): {problems}") from None
        classes[spec.name] = cls
    return classes


def build_shared_resources(needs: set[str], dataset: Dataset, settings: Settings, *,
                           show_progress: bool = False,
                           given: Mapping[str, Any] | None = None) -> SharedResources:
    """Build each shared resource any configured system declares in ``needs``, once.

    ``item_index``: the Chroma index of item texts for ``settings.embedder`` (built or
    brought up to date; unchanged items are not re-embedded). ``encoder``: that encoder.
    ``llm``: the backend of ``settings.llm`` (create_backend), built lazily on first use and
    closed by ``resources.close()``; ``prompt_renderer``: the profile prompt renderer
    counting with the model's tokenizer (lazy too); ``settings``: the run's settings.
    Resources in ``given`` are used as they are (not built, not closed)."""
    resources = SharedResources(dict(given or {}))
    needs = {n for n in needs if n not in resources}
    if needs & {"item_index", "encoder"}:
        from tastelens.vectorstore.encoders import encoder_from_settings

        resources["encoder"] = encoder_from_settings(settings)
    if "item_index" in needs:
        from tastelens.vectorstore.item_index import ItemIndex

        index = ItemIndex.for_dataset(settings, dataset.name, resources["encoder"])
        index.build(dataset.items.values(), progress=show_progress)
        resources["item_index"] = index
    if "llm" in needs:
        from tastelens.llm.cache import ReplyCache
        from tastelens.llm.registry import create_backend

        # One reply cache for the run: systems that ask the same greedy prompt (the LLM alone
        # and the learned ranker's LLM feature) pay for it once.
        resources.add_lazy("llm", lambda: ReplyCache(create_backend(settings)))
    if "settings" in needs:
        resources["settings"] = settings  # e.g. to open a behaviour collection by name
    if "prompt_renderer" in needs:
        from tastelens.agent.profile.profiler import renderer_for_settings

        resources.add_lazy("prompt_renderer", lambda: renderer_for_settings(settings))
    return resources


def publish_behaviour_vectors(system: Recommender, dataset: Dataset, settings: Settings, *,
                              tag: str | None = None) -> int:
    """Write a fitted system's ``item_embeddings()`` (catalog order) into the vector store as
    ``<prefix>-<dataset>-behaviour-<tag>`` (tag: the run's system name, default its type),
    replacing what was there; returns how many vectors were written."""
    from tastelens.vectorstore.collection import BehaviourIndex

    name = tag or system.name
    vectors = np.asarray(system.item_embeddings(), dtype=np.float32)  # type: ignore[attr-defined]
    if vectors.shape[0] != dataset.n_items:
        raise EvalError(f"system {name!r}: item_embeddings() has {vectors.shape[0]} rows, "
                        f"the catalog {dataset.n_items}")
    BehaviourIndex.for_dataset(settings, dataset.name, name).replace_all(dataset.item_ids, vectors)
    return int(vectors.shape[0])


def _checked_scores(raw: Any, shape: tuple[int, int], spec: SystemSpec, what: str) -> np.ndarray:
    # A copy: masking writes -inf, and systems may hand out views of their own arrays.
    scores = np.array(raw, copy=True)
    if scores.dtype.kind != "f":
        scores = scores.astype(np.float64)
    if scores.shape != shape:
        raise EvalError(f"system {spec.name!r} ({spec.type}): {what}() returned shape "
                        f"{scores.shape}, expected {shape}")
    if np.isnan(scores).any():
        raise EvalError(f"system {spec.name!r} ({spec.type}): {what}() returned NaN scores")
    return scores


CANDIDATE_CUTS = (20, 50, 100)
"""The N of the candidate recall@N reported for systems with a candidate stage."""


def score_system(system: Recommender, spec: SystemSpec, cases: Sequence[EvalCase], *,
                 n_items: int, k_max: int, batch_size: int, rng: np.random.Generator,
                 masks: list[np.ndarray] | None, candidates: np.ndarray | None,
                 progress: Progress | None = None, label: str = ""
                 ) -> tuple[M.TargetRanks, np.ndarray, float, float, np.ndarray | None]:
    """Score ``cases`` in batches: (rank counts, top-k_max lists, score s, harness s, the
    target's 0-based position among each case's candidates — inf when absent — or None
    for a system without a candidate stage)."""
    greater, ties, n_ranked, lists, positions = [], [], [], [], []
    score_s = harness_s = 0.0
    for start in range(0, len(cases), batch_size):
        batch = cases[start:start + batch_size]
        histories = [newest(case.history, spec.history_limit) for case in batch]
        t0 = time.perf_counter()
        if candidates is None:
            raw = system.score(histories)
            pools = system.candidates()
            if pools is not None:
                positions += [_position(pool, case.target) for pool, case in zip(pools, batch)]
        else:
            raw = system.score_candidates(histories, candidates[start:start + len(batch)])
        t1 = time.perf_counter()
        if candidates is None:
            scores = _checked_scores(raw, (len(batch), n_items), spec, "score")
            batch_masks = masks[start:start + len(batch)]
            protocols.mask_scores(scores, batch_masks)
            targets = np.array([case.target for case in batch], dtype=np.int64)
            ranks = M.target_ranks(scores, targets, np.array([m.size for m in batch_masks]))
            top = M.top_k(scores, k_max, rng)
        else:
            cand = candidates[start:start + len(batch)]
            scores = _checked_scores(raw, cand.shape, spec, "score_candidates")
            ranks = M.target_ranks(scores, np.zeros(len(batch), dtype=np.int64))
            pos = M.top_k(scores, k_max, rng)
            top = np.where(pos >= 0, np.take_along_axis(cand, np.maximum(pos, 0), axis=1), -1)
        greater.append(ranks.greater)
        ties.append(ranks.ties)
        n_ranked.append(ranks.n_ranked)
        lists.append(top)
        score_s += t1 - t0
        harness_s += time.perf_counter() - t1
        if progress:
            progress(label, start + len(batch), len(cases))
    ranks = M.TargetRanks(np.concatenate(greater), np.concatenate(ties), np.concatenate(n_ranked))
    found = np.array(positions, dtype=np.float64) if len(positions) == len(cases) else None
    return ranks, np.concatenate(lists), score_s, harness_s, found


def newest(history: History, limit: int | None) -> History:
    """``history`` cut to its newest ``limit`` events (all of it for None)."""
    if limit is None or len(history) <= limit:
        return history
    return History(user=history.user, items=history.items[-limit:],
                   ratings=history.ratings[-limit:], timestamps=history.timestamps[-limit:])


def _position(pool: np.ndarray, target: int) -> float:
    hits = np.flatnonzero(np.asarray(pool) == target)
    return float(hits[0]) if len(hits) else math.inf


def candidate_recall(positions: np.ndarray) -> dict[str, float]:
    """Share of cases whose target is among the first N candidates, per N."""
    return {f"candidate_recall@{n}": round(float(np.mean(positions < n)), 4)
            for n in CANDIDATE_CUTS}


def _run_one(spec: SystemSpec, seed: int, context: SystemContext, split_train: pd.DataFrame,
             cases: Sequence[EvalCase], config: EvalConfig, settings: Settings,
             masks: list[np.ndarray] | None, candidates: np.ndarray | None,
             progress: Progress | None, notes: list[str]) -> CaseScores:
    label = spec.name if len(config.seeds) == 1 else f"{spec.name} (seed {seed})"
    try:
        system = build(spec.type, spec.params, context)
        if progress:
            progress(f"{label}: fitting", 0, len(cases))
        t0 = time.perf_counter()
        system.fit(split_train)
        fit_s = time.perf_counter() - t0
        if progress:
            progress(label, 0, len(cases))
        rng = np.random.default_rng([seed, zlib.crc32(spec.name.encode("utf-8"))])
        ranks, lists, score_s, harness_s, found = score_system(
            system, spec, cases, n_items=context.dataset.n_items, k_max=max(config.metrics.k),
            batch_size=config.batch_size, rng=rng, masks=masks, candidates=candidates,
            progress=progress, label=label)
        diagnostics = _diagnostics(system, spec)
        if found is not None:
            diagnostics = {**candidate_recall(found), **(diagnostics or {})}
        if config.publish_behaviour and hasattr(system, "item_embeddings"):
            n = publish_behaviour_vectors(system, context.dataset, settings, tag=spec.name)
            notes.append(f"published {n} behaviour vectors of {spec.name!r}")
    except EvalError:
        raise
    except TastelensError as exc:
        raise EvalError(f"system {spec.name!r} ({spec.type}): {exc}") from exc
    except Exception as exc:  # say which system, keep the traceback
        exc.add_note(f"while evaluating system {spec.name!r} (type {spec.type!r}, seed {seed})")
        raise
    return CaseScores(ranks, lists, fit_s, score_s, harness_s, diagnostics, system.card())


def _diagnostics(system: Recommender, spec: SystemSpec) -> dict[str, Any] | None:
    """The system's ``diagnostics()`` (optional; a flat dict of JSON numbers or strings)."""
    report = getattr(system, "diagnostics", None)
    if not callable(report):
        return None
    values = report()
    if values is None:
        return None
    if not isinstance(values, Mapping):
        raise EvalError(f"system {spec.name!r} ({spec.type}): diagnostics() returned "
                        f"{type(values).__name__}, expected a dict")
    return dict(values)


def evaluate(config: EvalConfig, settings: Settings, *, dataset: Dataset | None = None,
             progress: Progress | None = None,
             resources: Mapping[str, Any] | None = None) -> EvalResult:
    """Fit and score every configured system on every seed; nothing is written.

    ``resources``: shared resources to use instead of building them (e.g. an LLM backend
    the caller already has); the caller keeps ownership."""
    started = time.perf_counter()
    # What ran: the commit and time at the start (the checkout may move during a long run).
    commit, started_at = git_commit(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    check_systems(config)
    dataset = dataset if dataset is not None else load_dataset_for(config, settings)
    split = protocols.make_split(config, dataset)
    dataset = split.dataset  # its items carry only the tags dated before the split's cut
    cases = protocols.select_cases(split, config)

    masks = candidates = None
    if config.protocol.kind == "full":
        masks = protocols.case_masks(cases)
    else:
        try:
            candidates = protocols.sample_candidates(
                cases, dataset, config.protocol.n_negatives, config.protocol.seed)
        except ConfigError as exc:
            raise ConfigError(f"{config.source or '<eval config>'}: {exc}") from None

    registry = registered()
    needs = {n for spec in config.systems for n in registry[spec.type].needs}
    t0 = time.perf_counter()
    shared = build_shared_resources(needs, dataset, settings,
                                    show_progress=progress is not None, given=resources)
    resources_s = time.perf_counter() - t0

    work_dir = settings.cache_dir / "systems" / dataset.name  # checkpoints (e.g. SASRec)
    work_dir.mkdir(parents=True, exist_ok=True)
    runs: dict[str, list[CaseScores]] = {spec.name: [] for spec in config.systems}
    notes: list[str] = []
    try:
        for seed in config.seeds:
            context = SystemContext(
                dataset=dataset, work_dir=work_dir, seed=seed, resources=shared or None,
                labelled=split.validation if config.evaluate_on == "test" else ())
            for spec in config.systems:
                runs[spec.name].append(_run_one(spec, seed, context, split.train, cases,
                                                config, settings, masks, candidates,
                                                progress, notes))
    finally:
        shared.close()  # e.g. stops a vLLM server the run started

    resolved = config.model_dump(mode="json")
    if dataset.source:
        resolved["dataset"]["path"] = str(dataset.source)
    metrics, per_user = aggregate(config, dataset, split, cases, runs,
                                  resources_seconds=resources_s)
    record = run_record(resolved, dataset=dataset.name, elapsed_seconds=round(
        time.perf_counter() - started, 3), notes=notes, git_commit=commit,
                        started_at=started_at)
    metrics["protocol"]["commit"] = record.get("git_commit")
    return EvalResult(config=config, metrics=metrics, per_user=per_user, record=record,
                      notes=notes)


def timestamped_dir(root: Path, stem: str) -> Path:
    """``root/<stem>-<YYYYmmdd-HHMMSS>``, suffixed ``-2``, ``-3`` … if that exists."""
    base = root / f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def default_out_dir(config: EvalConfig, root: Path = Path("runs/eval")) -> Path:
    """``runs/eval/<config-stem>-<YYYYmmdd-HHMMSS>`` (suffixed if that exists)."""
    return timestamped_dir(root, config.source.stem if config.source else "eval")


def write_run(result: EvalResult, out_dir: Path) -> Path:
    """Write metrics.json, report.md, metrics.png, per_user.parquet and run.json atomically."""
    from tastelens.eval.report import write_plot, write_report

    with staged_dir(Path(out_dir)) as tmp:
        atomic_write_json(tmp / "metrics.json", result.metrics)
        result.per_user.to_parquet(tmp / "per_user.parquet", index=False)
        write_plot(result.metrics, tmp / "metrics.png")
        write_report(result.metrics, tmp / "report.md", plot_name="metrics.png")
        atomic_write_json(tmp / "run.json", {**result.record, "out_dir": str(out_dir)})
    result.out_dir = Path(out_dir)
    return result.out_dir


def run_eval(config: EvalConfig, settings: Settings, *, out_dir: Path | None = None,
             dataset: Dataset | None = None, progress: Progress | None = None,
             resources: Mapping[str, Any] | None = None) -> EvalResult:
    """:func:`evaluate`, then :func:`write_run` into ``out_dir`` (default: see
    :func:`default_out_dir`)."""
    result = evaluate(config, settings, dataset=dataset, progress=progress,
                      resources=resources)
    write_run(result, out_dir or default_out_dir(config))
    return result
