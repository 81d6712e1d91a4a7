"""Run an ``eval chat`` config: dialogues -> cases -> baselines and the chat -> metrics.

:func:`evaluate_chat` computes everything in memory; :func:`write_chat_run` writes
``metrics.json``, ``report.md``, ``per_case.parquet`` and ``run.json`` into a staged folder
that becomes the output folder in one rename (a failed run leaves nothing half-written).
The pieces: :mod:`~tastelens.eval.chat.dialogues` (formats),
:mod:`~tastelens.eval.chat.matching` (titles), :mod:`~tastelens.eval.chat.cases`
(protocols, kinds, split), :mod:`~tastelens.eval.chat.baselines`,
:mod:`~tastelens.eval.chat.replay` (the chat, in process or over HTTP),
:mod:`~tastelens.eval.chat.scoring` (metrics, intervals), :mod:`~tastelens.eval.chat.report`.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tastelens.agent.chat.intent import RuleParser
from tastelens.config.settings import Settings
from tastelens.data.dataset import Dataset
from tastelens.errors import ConfigError
from tastelens.eval.baselines.base import SystemContext
from tastelens.eval.chat import scoring
from tastelens.eval.chat.baselines import (
    BaselineRanks,
    check_baselines,
    needs_of,
    popularity_counts,
    score_baseline,
)
from tastelens.eval.chat.cases import KINDS, CaseSet, build_cases, in_split
from tastelens.eval.chat.config import ChatEvalConfig
from tastelens.eval.chat.dialogues import load_dialogues
from tastelens.eval.chat.matching import MentionMatcher
from tastelens.eval.chat.replay import CaseOutcome, HttpChat, in_process_chat, replay
from tastelens.eval.harness import build_shared_resources, timestamped_dir
from tastelens.fsutil import atomic_write_json, atomic_write_text, staged_dir
from tastelens.runinfo import git_commit, run_record
from tastelens.vectorstore.collaborative import models_dir

Progress = Callable[[str, int, int], None]
"""``progress(label, done, total)``: '<baseline>: fitting', '<baseline>', 'chat' (cases)."""


@dataclass
class ChatEvalResult:
    """Everything a run computed; ``metrics`` is exactly what metrics.json holds."""

    config: ChatEvalConfig
    metrics: dict[str, Any]
    per_case: pd.DataFrame
    record: dict[str, Any]
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)


def load_cases(config: ChatEvalConfig, dataset: Dataset, settings: Settings
               ) -> tuple[CaseSet, MentionMatcher, int]:
    """The run's cases (split, then limit), the matcher (its stats cover the split's
    conversations) and how many conversations the file holds."""
    if config.dialogues.path is None:
        raise ConfigError(f"{config.where('dialogues.path')}: no dialogues file: set it or "
                          "pass --dialogues")
    dialogues = load_dialogues(config.dialogues.path, config.dialogues.format)
    matcher = MentionMatcher(dataset)
    parser = RuleParser(matcher.vocab, title_cutoff=settings.chat.title_cutoff)
    cases = build_cases(in_split(dialogues, config.split), matcher, parser, config.protocol)
    cases = cases.limited(config.limit)
    if not cases.cases:
        raise ConfigError(f"{config.dialogues.path}: no case to evaluate in split "
                          f"{config.split!r} (skipped: {dict(cases.skipped) or 'none'}; "
                          f"{cases.n_conversations} conversations)")
    return cases, matcher, len(dialogues)


def evaluate_chat(config: ChatEvalConfig, settings: Settings, *, dataset: Dataset | None = None,
                  chat: Any = None, api_key: str | None = None,
                  progress: Progress | None = None) -> ChatEvalResult:
    """Score the chat and the baselines on the config's cases; nothing is written. ``chat``:
    a client to use instead of building one (the caller closes it)."""
    from tastelens.data import load_dataset, resolve_data_path

    started = time.perf_counter()
    commit, started_at = git_commit(), datetime.now(timezone.utc).isoformat(timespec="seconds")
    if config.chat.api and config.chat.llm:
        raise ConfigError(f"{config.where('chat.llm')}: the LLM switch is for the in-process "
                          "chat; over chat.api the server's settings decide")
    check_baselines(config.baselines, config.where)
    dataset = dataset if dataset is not None else load_dataset(
        resolve_data_path(settings, config.dataset.path))
    cases, matcher, n_file = load_cases(config, dataset, settings)
    n = len(cases.cases)
    k = max(config.metrics.k)

    owned = chat is None
    if chat is None:  # before the baselines: a missing index, ranker or key fails in seconds
        chat = (HttpChat(config.chat.api, api_key=api_key, timeout_s=config.chat.timeout_s)
                if config.chat.api else in_process_chat(settings, dataset,
                                                        use_llm=config.chat.llm, k=k))
    try:
        if isinstance(chat, HttpChat):
            chat.check()
        baselines = _baselines(config, dataset, settings, cases, progress)
        outcomes = _replay_all(chat, cases, config.protocol, progress)
        described = chat.describe()
    finally:
        if owned:
            chat.close()

    metrics, per_case = _aggregate(config, dataset, cases, matcher, baselines, outcomes,
                                   described)
    metrics["protocol"]["n_conversations_in_file"] = n_file
    record = run_record(config.model_dump(mode="json"), dataset=dataset.name, chat=described,
                        git_commit=commit, started_at=started_at,
                        elapsed_seconds=round(time.perf_counter() - started, 3))
    metrics["protocol"]["commit"] = commit
    notes = [f"{n} cases from {len(cases.dialogues)} conversations"]
    return ChatEvalResult(config, metrics, per_case, record, notes=notes)


def _baselines(config: ChatEvalConfig, dataset: Dataset, settings: Settings, cases: CaseSet,
               progress: Progress | None) -> dict[str, BaselineRanks]:
    if not config.baselines:
        return {}
    shared = build_shared_resources(needs_of(config.baselines), dataset, settings)
    # The serving models' folder: a SASRec / EASE fitted there for the same config, seed and
    # data (`tastelens rank train`, `index behaviour`) is loaded instead of trained again.
    context = SystemContext(dataset=dataset, work_dir=models_dir(settings, dataset.name),
                            seed=settings.recommend.collaborative.seed, resources=shared or None)
    popularity = popularity_counts(dataset)
    out = {}
    try:
        for spec in config.baselines:
            if progress:
                progress(f"{spec.name}: fitting", 0, len(cases.cases))
            out[spec.name] = score_baseline(spec, cases.cases, context, popularity)
            if progress:
                progress(spec.name, len(cases.cases), len(cases.cases))
    finally:
        shared.close()
    return out


def _replay_all(chat: Any, cases: CaseSet, protocol: str, progress: Progress | None
                ) -> list[CaseOutcome]:
    by_conversation: dict[str, list[int]] = {}
    for i, case in enumerate(cases.cases):
        by_conversation.setdefault(case.conversation, []).append(i)
    outcomes: list[CaseOutcome | None] = [None] * len(cases.cases)
    done = 0
    if progress:
        progress("chat", 0, len(cases.cases))
    for cid, indices in by_conversation.items():
        conversation = chat.open()
        try:
            results = replay(conversation, cases.dialogues[cid].turns,
                             [cases.cases[i].turn for i in indices],
                             observe=protocol == "every")
        finally:
            conversation.close()
        for i, outcome in zip(indices, results):
            outcomes[i] = outcome
        done += len(indices)
        if progress:
            progress("chat", done, len(cases.cases))
    return [o for o in outcomes if o is not None]


def _aggregate(config: ChatEvalConfig, dataset: Dataset, cases: CaseSet,
               matcher: MentionMatcher, baselines: dict[str, BaselineRanks],
               outcomes: list[CaseOutcome], described: dict[str, Any]
               ) -> tuple[dict[str, Any], pd.DataFrame]:
    ks, mrr_k = config.metrics.k, config.metrics.mrr_k
    boot = config.bootstrap.model_dump()
    conv = [c.conversation for c in cases.cases]
    targets = [c.target for c in cases.cases]
    lists = [o.items for o in outcomes]
    per: dict[str, dict[str, np.ndarray]] = {
        "chat": scoring.list_metrics(lists, targets, ks, mrr_k,
                                     named=[c.excluded for c in cases.cases])}
    for name, result in baselines.items():
        per[name] = scoring.ranked_metrics(result.ranks, ks, mrr_k)

    systems = {name: scoring.summarize(values, conv, **boot) for name, values in per.items()}
    differences = {f"chat - {name}": scoring.paired(per["chat"], per[name], conv, **boot)
                   for name in baselines}
    kinds = [c.kind for c in cases.cases]
    by_kind = {}
    for kind in KINDS:
        rows = [i for i, k in enumerate(kinds) if k == kind]
        if not rows:
            by_kind[kind] = {"n_cases": 0}
            continue
        sub_conv = [conv[i] for i in rows]
        by_kind[kind] = {"n_cases": len(rows), "systems": {
            name: scoring.summarize({m: v[rows] for m, v in values.items()}, sub_conv, **boot)
            for name, values in per.items()}}

    turns = [t for o in outcomes for t in o.turns]
    said = [t for t in turns if t.role == "seeker"]
    lengths = [len(o.items) for o in outcomes if o.items is not None]
    seeded = [name for name, r in baselines.items() if r.fallback.any()]
    metrics = {
        "protocol": {
            "name": config.protocol, "split": config.split, "limit": config.limit,
            "k": ks, "mrr_k": mrr_k, "dataset": dataset.name,
            "dialogues": str(config.dialogues.path), "n_conversations_in_split":
                cases.n_conversations, "n_conversations": len(cases.dialogues),
            "n_cases": len(cases.cases), "skipped": dict(cases.skipped),
            "chat": described, "bootstrap": boot},
        "systems": systems,
        "differences": differences,
        "by_kind": by_kind,
        "latency": {"seeker_turns": scoring.percentiles([t.seconds for t in said]),
                    "observed_turns": scoring.percentiles(
                        [t.seconds for t in turns if t.role == "recommender"])},
        "chat_turns": {
            "kinds": dict(Counter(t.kind for t in said if not t.error)),
            "paths": dict(Counter(t.path for t in said if not t.error)),
            "errors": sum(1 for t in said if t.error),
            "error_examples": list(dict.fromkeys(t.error for t in said if t.error))[:5],
            "max_list_length": max(lengths, default=0),
            "cases_without_list": sum(1 for o in outcomes if o.items is None)},
        "baselines": {name: {"fallback_cases": int(r.fallback.sum()),
                             "fit_seconds": round(r.fit_seconds, 3),
                             "score_seconds": round(r.score_seconds, 3)}
                      for name, r in baselines.items()},
        "fallback_note": (f"{', '.join(seeded)}: cases whose seeker named no catalog movie "
                          "are ranked by popularity") if seeded else None,
        "matching": matcher.stats.as_dict(),
    }
    per_case = _per_case(cases, dataset, outcomes, baselines)
    return metrics, per_case


def _per_case(cases: CaseSet, dataset: Dataset, outcomes: list[CaseOutcome],
              baselines: dict[str, BaselineRanks]) -> pd.DataFrame:
    rows = []
    for i, (case, outcome) in enumerate(zip(cases.cases, outcomes)):
        row: dict[str, Any] = {
            "conversation": case.conversation, "case": case.case, "turn": case.turn,
            "kind": case.kind, "target": case.target, "target_title": case.target_title,
            "catalog_title": dataset.items[case.target].title, "seeds": list(case.seeds),
            "rank_chat": scoring.list_rank(outcome.items, case.target),
            "chat_named_back": [i for i in outcome.items or () if i in case.excluded]}
        for name, result in baselines.items():
            row[f"rank_{name}"] = float(result.ranks.rank()[i])
        row.update({
            "chat_list": list(outcome.items or []), "chat_has_list": outcome.items is not None,
            "turn_roles": [t.role for t in outcome.turns],
            "turn_seconds": [round(t.seconds, 4) for t in outcome.turns],
            "turn_kinds": [t.kind for t in outcome.turns],
            "turn_paths": [t.path for t in outcome.turns],
            "turn_errors": [t.error or "" for t in outcome.turns]})
        rows.append(row)
    return pd.DataFrame(rows)


def default_out_dir(config: ChatEvalConfig, root: Path = Path("runs/eval")) -> Path:
    """``runs/eval/chat-<protocol>-<YYYYmmdd-HHMMSS>`` (suffixed if that exists)."""
    return timestamped_dir(root, f"chat-{config.protocol}")


def write_chat_run(result: ChatEvalResult, out_dir: Path) -> Path:
    """metrics.json, report.md, per_case.parquet and run.json, all or nothing."""
    from tastelens.eval.chat.report import report_markdown

    with staged_dir(Path(out_dir)) as tmp:
        atomic_write_json(tmp / "metrics.json", result.metrics)
        result.per_case.to_parquet(tmp / "per_case.parquet", index=False)
        atomic_write_text(tmp / "report.md", report_markdown(result.metrics))
        atomic_write_json(tmp / "run.json", {**result.record, "out_dir": str(out_dir)})
    result.out_dir = Path(out_dir)
    return result.out_dir


def run_chat_eval(config: ChatEvalConfig, settings: Settings, *, out_dir: Path | None = None,
                  **kwargs: Any) -> ChatEvalResult:
    """:func:`evaluate_chat`, then :func:`write_chat_run`."""
    result = evaluate_chat(config, settings, **kwargs)
    write_chat_run(result, out_dir or default_out_dir(config))
    return result
