"""Run the profile report of ``eval/profile_report.py`` for the profile sources of an eval
config, and its part (b) — profile-only retrieval — through the harness, in one pass.

Each ``llm-pipeline`` system of the config names a profile source (its pipeline's
``profile_source`` and ``profiler``, whose ``adapter`` is the profile adapter). Every
source's profiles of the evaluated cases are built once, here, and handed to the harness
(resource ``profile_cache``), so the systems that retrieve with them and the report read
the very same profiles — and an LLM source costs its model calls once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import Settings
from tastelens.eval import protocols
from tastelens.eval.baselines.eval_profiles import EvalProfiles
from tastelens.eval.baselines.llm_pipeline import LLMPipelineConfig
from tastelens.eval.config import EvalConfig
from tastelens.eval.harness import load_dataset_for, run_eval
from tastelens.eval.profile_report import paired_hits, popularity_bins, report_source
from tastelens.fsutil import atomic_write_json, atomic_write_text
from tastelens.runinfo import git_commit

PROFILE_SYSTEMS = ("llm-pipeline",)


def profile_sources(config: EvalConfig) -> dict[str, PipelineConfig]:
    """System name -> its pipeline's config, for the systems that retrieve from a profile."""
    return {spec.name: LLMPipelineConfig.model_validate(spec.params).pipeline
            for spec in config.systems if spec.type in PROFILE_SYSTEMS}


def run_profile_report(config: EvalConfig, settings: Settings, out_dir: Path, *,
                       retrieval: bool = True, top: int = 10,
                       progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Build every source's profiles, report (a), (c), (d) per source, run the config for
    (b) (unless ``retrieval`` is off) and write ``profile_report.json`` / ``.md`` (and the
    eval run under ``retrieval/``) into ``out_dir``."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    dataset = load_dataset_for(config, settings)
    split = protocols.make_split(config, dataset)
    cases = protocols.select_cases(split, config)
    histories = [c.history for c in cases]
    bins = popularity_bins(split.dataset, split.train, 20)
    sources = profile_sources(config)
    cache: dict[tuple, Any] = {}
    hits: dict[str, Any] = {}
    llm = None
    resources: dict[str, Any] = {"profile_cache": cache}
    report: dict[str, Any] = {"commit": git_commit(), "config": str(config.source),
                              "split": config.split.kind, "evaluate_on": config.evaluate_on,
                              "users": len(cases), "top": top, "sources": {}}
    try:
        for name, pipe in sources.items():
            if pipe.profile_source == "llm" and llm is None:
                from tastelens.llm.cache import ReplyCache
                from tastelens.llm.registry import create_backend

                llm = resources["llm"] = ReplyCache(create_backend(settings))
            say(f"{name}: building {len(cases)} profiles ({pipe.profile_source})")
            t0 = time.perf_counter()
            maker = EvalProfiles(split.dataset, source=pipe.profile_source,
                                 config=pipe.profiler, llm=llm, train=split.train,
                                 cache=cache)
            profiles = maker.profiles(histories)
            maker.usage.users += len(histories)  # its per-user figures divide by these
            seconds = round(time.perf_counter() - t0, 1)
            kept: dict[str, Any] = {}
            report["sources"][name] = {
                "profile_source": pipe.profile_source, "adapter": pipe.profiler.adapter,
                "seconds": seconds,
                **report_source(split.dataset, cases, profiles, bins, top=top, keep=kept),
                **({"llm": maker.usage.diagnostics()} if pipe.profile_source == "llm"
                   else {})}
            hits[name] = kept["hits"]
        names = list(hits)
        report["hit_rate_pairs"] = {f"{a} - {b}": paired_hits(hits[a], hits[b])
                                    for i, a in enumerate(names) for b in names[i + 1:]}
        if retrieval:
            say("profile-only retrieval (harness)")
            result = run_eval(config, settings, out_dir=Path(out_dir) / "retrieval",
                              dataset=dataset, resources=resources)
            report["retrieval"] = {
                name: {key: values.get(key) for key in
                       ("ndcg@10", "recall@10", "mean_ci", "ci", "ci_vs") if key in values}
                for name, values in result.metrics.get("systems", {}).items()}
            report["retrieval_reference"] = config.bootstrap.reference
            report["retrieval_out"] = str(Path(out_dir) / "retrieval")
    finally:
        if llm is not None:
            llm.close()
    report["seconds"] = round(time.perf_counter() - started, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "profile_report.json", report)
    atomic_write_text(out / "profile_report.md", report_markdown(report))
    return report


def report_markdown(report: dict[str, Any]) -> str:
    """The report's tables: one row per source."""
    lines = [f"# Profile report ({report['evaluate_on']}, {report['users']} users, "
             f"commit {report.get('commit') or '?'})", "",
             "| source | hit rate | base rate | lift [95% CI] | fine share | distinct labels |"
             " most common (share) | ≥3 kw & ≥2 topic | grounded | replies kept |"
             " model's labels |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["sources"].items():
        h, s, g = r["hit_rate"], r["specificity"], r["grounding"]
        ci = "–".join(f"{v:.2f}" for v in h.get("lift_ci", []))
        lines.append(
            f"| {name} | {h.get('hit_rate', 0):.3f} | {h.get('base_rate', 0):.3f} | "
            f"{h.get('lift') or 0:.2f} [{ci}] | {s['fine_share']:.1%} | {s['distinct_labels']} | "
            f"{s['most_common_label']} ({s['most_common_share']:.1%}) | "
            f"{s['users_3_keyword_2_topic']:.1%} | {g['supported_share']:.1%} | "
            f"{r.get('replies_kept_share', 0):.1%} | "
            f"{r.get('labels_from_model_share', 0):.1%} |")
    for pair, value in report.get("hit_rate_pairs", {}).items():
        lines.append(f"\nHit rate {pair}: {value['delta']:+.4f} [{value['ci'][0]:+.4f}, "
                     f"{value['ci'][1]:+.4f}] (paired bootstrap over users)")
    if "retrieval" in report:
        ref = report.get("retrieval_reference")
        lines += ["", "Profile-only retrieval (full protocol):", "",
                  f"| system | NDCG@10 [95% CI] | Recall@10 | Δ NDCG@10 vs {ref} [95% CI] |",
                  "|---|---|---|---|"]
        for name, values in report["retrieval"].items():
            ci = values.get("mean_ci", {}).get("ndcg@10", {})
            diff = values.get("ci", {}).get("ndcg@10")
            delta = (f"{diff['delta']:+.4f} [{diff['low']:+.4f}, {diff['high']:+.4f}]"
                     if diff else "–")
            lines.append(f"| {name} | {values.get('ndcg@10', float('nan')):.4f} "
                         f"[{ci.get('low', float('nan')):.4f}, {ci.get('high', float('nan')):.4f}]"
                         f" | {values.get('recall@10', float('nan')):.4f} | {delta} |")
    return "\n".join(lines) + "\n"
