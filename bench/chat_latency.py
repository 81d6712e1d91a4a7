"""Benchmark: latency of chat turns, per turn kind, against a warm LLM server (not a test).

Replays scripted conversations (each a few turns, one of them a new visitor without
history) through :class:`~tastelens.agent.chat.session.ChatSession` on the configured
pipeline — each turn under the interactive LLM deadline, as ``tastelens chat`` runs it — and
prints p50 / p95 of the turn's wall time per kind (recommend: a first list or a new seed;
refine: the request changed; more; why), which path read each message (rules / llm /
llm-failed) and the share of turns that sent an LLM request (to read the message, and at
all). Targets on a 2-core CPU with the default model: p50 ≤ 3 s and p95 ≤ 6 s for the turns
that recommend (recommend, refine, more), ≤ 0.5 s for "why …?" turns.

    TASTELENS_LLM__PORT=8190 TASTELENS_CACHE_DIR=/tmp/runcache \\
        python bench/chat_latency.py [--data PATH] [--rounds 1] [--json out.json]
        [--results bench/results/chat-latency.md]

The vLLM server on settings llm.port is reused when it runs (else the 'vllm' backend starts
one, which takes minutes); the Chroma item index must exist (`tastelens index build`), and
for the default learned re-ranker the ranker (`tastelens rank train`) — or measure another
pipeline with e.g. ``TASTELENS_RECOMMEND__RERANK__MODE=score
TASTELENS_RECOMMEND__COLLABORATIVE__ENABLED=false``. One untimed turn warms the encoder, the
caches and the server's prefix cache first. On a shared machine the wall times are upper
bounds.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from tastelens.agent.chat.session import ChatSession
from tastelens.agent.pipeline import RecommendPipeline
from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import load_settings
from tastelens.data import load_dataset
from tastelens.llm.deadline import llm_deadline
from tastelens.llm.registry import create_backend

DEFAULT_DATA = Path("/work/shared/data/ml-latest-small")
KINDS = ("recommend", "refine", "more", "why")
RECOMMENDING = ("recommend", "refine", "more")

# (user id or None for a new visitor, messages). Mostly messages the rules read on their
# own, as people write them; a few that only the LLM can read ("cozy for a rainy sunday").
SCRIPTS: list[tuple[str | None, list[str]]] = [
    ("1", ["something like Heat but funnier", "no horror", "more recent ones",
           "why the second?"]),
    ("414", ["comedies from the 90s", "show me more", "no romance", "why the first one?",
             "more"]),
    (None, ["I love 90s Disney musicals", "no romance", "more", "why the third one?"]),
    ("68", ["something cozy for a rainy sunday", "older ones", "why the second?", "more"]),
    ("274", ["like The Matrix", "without action", "after 2000", "why the first?", "reset",
             "Toy Story"]),
    ("599", ["a heist movie with a clever twist", "actually no crime", "more", "why #2?"]),
    (None, ["I'm into space adventures", "scarier", "why the first one?", "show me more"]),
]


def percentiles(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def replay(pipeline: RecommendPipeline, dataset, settings, user: str | None,  # noqa: ANN001
           messages: list[str]) -> tuple[list[dict], dict]:
    """One conversation: a row per turn, and the session's path counts."""
    chat = ChatSession(pipeline, llm=pipeline.llm, dataset=dataset, user=user,
                       config=settings.chat)
    rows = []
    for message in messages:
        before = pipeline.llm.stats.requests
        with llm_deadline(settings.llm.interactive_deadline_s):
            turn = chat.respond(message)
        report = turn.recommendations.report if turn.recommendations is not None else None
        rows.append({
            "user": user, "message": message, "kind": turn.report.kind,
            "path": turn.report.path, "seconds": turn.seconds,
            "read_seconds": turn.report.read_seconds,
            "intent_requests": turn.report.intent_requests,
            "llm_requests": pipeline.llm.stats.requests - before,
            "items": len(turn.recommendations.items) if turn.recommendations else 0,
            "rerank_fallback": bool(report and report.rerank_fallback),
            "timings": report.timings if report else {}})
    return rows, chat.stats.model_dump()


def summarise(rows: list[dict]) -> dict:
    by_kind = {}
    for kind in KINDS:
        secs = [r["seconds"] for r in rows if r["kind"] == kind]
        if secs:
            p50, p95 = percentiles(secs)
            by_kind[kind] = {"n": len(secs), "p50": p50, "p95": p95, "max": max(secs)}
    recommending = [r["seconds"] for r in rows if r["kind"] in RECOMMENDING]
    p50, p95 = percentiles(recommending) if recommending else (0.0, 0.0)
    stages = {}
    for stage in ("profile", "retrieve", "rerank", "explain"):
        vals = [r["timings"][stage] for r in rows if stage in r["timings"]]
        if vals:
            stages[stage] = dict(zip(("p50", "p95"), percentiles(vals)))
    n = len(rows)
    return {
        "turns": n, "kinds": by_kind,
        "recommending": {"n": len(recommending), "p50": p50, "p95": p95},
        "paths": dict(Counter(r["path"] for r in rows)),
        "share_reading_llm": sum(r["intent_requests"] > 0 for r in rows) / n if n else 0.0,
        "share_any_llm": sum(r["llm_requests"] > 0 for r in rows) / n if n else 0.0,
        "rerank_fallbacks": sum(r["rerank_fallback"] for r in rows),
        "stages": stages}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rounds", type=int, default=1,
                        help="Replay every script this many times (fresh sessions).")
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    add_results_option(parser, "bench/results/chat-latency.md")
    args = parser.parse_args()

    settings = load_settings()
    dataset = load_dataset(args.data)
    t0 = time.perf_counter()
    rows: list[dict] = []
    with create_backend(settings) as llm, \
            RecommendPipeline.from_settings(settings, dataset, llm=llm) as pipeline:
        pipeline.warm_up()
        replay(pipeline, dataset, settings, "1", ["something like Toy Story"])  # untimed
        cfg = settings.recommend
        print(f"pipeline ready in {time.perf_counter() - t0:.1f} s; rerank={cfg.rerank.mode}, "
              f"collaborative={'on' if cfg.collaborative.enabled else 'off'}, "
              f"profile_source={cfg.profile_source}, explain="
              f"{'llm' if cfg.explain.use_llm else 'data'}, chat.intent_deadline_s="
              f"{settings.chat.intent_deadline_s:g}")
        for _ in range(args.rounds):
            for user, messages in SCRIPTS:
                conversation, _ = replay(pipeline, dataset, settings, user, messages)
                rows += conversation
                for r in conversation:
                    print(f"  {r['user'] or 'new':>4}  {r['kind']:<9} {r['path']:<10} "
                          f"{r['seconds']:6.2f} s  {r['message']}")
    summary = summarise(rows)
    print(f"\n{summary['turns']} turns in {len(SCRIPTS) * args.rounds} conversations")
    print("  kind        n   p50 s   p95 s   max s")
    for kind, s in summary["kinds"].items():
        print(f"  {kind:<9} {s['n']:3d}  {s['p50']:6.2f}  {s['p95']:6.2f}  {s['max']:6.2f}")
    rec = summary["recommending"]
    print(f"  turns that recommend (recommend+refine+more): p50 {rec['p50']:.2f} s, "
          f"p95 {rec['p95']:.2f} s")
    print(f"  read by: {summary['paths']}; turns that asked the LLM to read the message: "
          f"{summary['share_reading_llm']:.0%}; turns with any LLM request (reading, "
          f"re-ranking): {summary['share_any_llm']:.0%}; re-rank fallbacks "
          f"{summary['rerank_fallbacks']}")
    print("  pipeline stages (turns that recommend): " + ", ".join(
        f"{k} p50 {v['p50']:.2f} / p95 {v['p95']:.2f} s" for k, v in summary["stages"].items()))
    if args.json:
        args.json.write_text(json.dumps({"summary": summary, "turns": rows,
                                         "settings": {"rerank": settings.recommend.rerank.mode,
                                                      "chat": settings.chat.model_dump()}},
                                        indent=2))
    if args.results:
        kinds = [{"turns": kind, "n": s["n"], "p50 s": round(s["p50"], 3),
                  "p95 s": round(s["p95"], 3), "max s": round(s["max"], 3)}
                 for kind, s in summary["kinds"].items()]
        kinds.append({"turns": "all that recommend", "n": rec["n"], "p50 s": round(rec["p50"], 3),
                      "p95 s": round(rec["p95"], 3), "max s": "—"})
        write_results(
            args.results, "chat_latency", title="Chat latency", table=markdown_table(kinds),
            notes=f"{summary['turns']} turns in {len(SCRIPTS) * args.rounds} conversations on "
                  f"{dataset.name}; rerank {cfg.rerank.mode}, collaborative "
                  f"{'on' if cfg.collaborative.enabled else 'off'}, chat.intent_deadline_s "
                  f"{settings.chat.intent_deadline_s:g}. Read by: {summary['paths']}; turns "
                  f"that asked the LLM to read the message: {summary['share_reading_llm']:.0%}; "
                  f"with any LLM request: {summary['share_any_llm']:.0%}.")


if __name__ == "__main__":
    main()
