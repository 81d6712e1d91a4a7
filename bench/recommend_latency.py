"""Benchmark: latency of RecommendPipeline.recommend per stage and re-rank mode (not a test).

For N seeded-random users of a dataset (default ml-latest-small), with a cached profile
(``profile_source`` facts: no LLM call; or store: the profile job's store) and a warm LLM
server, times ``recommend`` one user at a time — what a CLI or API request costs — and
prints p50 / p95 of each stage (profile, retrieve, rerank, explain, total) for each re-rank
mode (none; learned-nollm: the learned ranker without its LLM feature; learned; score;
listwise), plus fallback counts. Targets on a 2-core CPU: p50 ≤ 2 s for the learned ranker
with its LLM feature (one score request), p95 ≤ 6 s.

    TASTELENS_LLM__PORT=8190 TASTELENS_CACHE_DIR=/tmp/runcache \\
        python bench/recommend_latency.py [--data PATH] [--users 10] [--k 10]
        [--modes none,learned-nollm,learned,score] [--profile-source facts|store] [--no-explain]
        [--explain-llm] [--json out.json] [--results bench/results/recommend-latency.md]

The vLLM server on settings llm.port is reused when it runs (else the 'vllm' backend starts
one, which takes minutes); the Chroma item index must exist (`tastelens index build`), and
for the learned modes the ranker (`tastelens rank train`). Each
mode first answers one warm-up request that is not timed. On a shared machine the wall
times are upper bounds.

Reply limits measured with it (SmolLM2-135M): under the listwise grammar the base model
writes up to 8.6 tokens a label (it may write newlines freely), so ``rerank.max_tokens``
unset means 32 + 9 per candidate; a guided explanation of ``explain.max_text_chars`` = 120
takes ≈ 45 tokens, so ``explain.max_tokens`` is 64.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import numpy as np

from tastelens.agent.pipeline import RecommendPipeline
from tastelens.agent.rank.reranker import Reranker
from tastelens.agent.serving import build_reranker
from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import Settings, load_settings
from tastelens.data import load_dataset
from tastelens.llm.registry import create_backend

STAGES = ("profile", "retrieve", "rerank", "explain", "total")
DEFAULT_DATA = Path("/work/shared/data/ml-latest-small")


def percentiles(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 95))


def for_mode(base: RecommendPipeline, mode: str, settings: Settings) -> RecommendPipeline:
    """A pipeline sharing ``base``'s components except a re-ranker in ``mode``
    ('learned-nollm': the learned ranker without its LLM feature)."""
    name, _, variant = mode.partition("-")
    config = base.config.model_copy(update={"rerank": base.config.rerank.model_copy(
        update={"mode": name, "llm_feature": variant != "nollm"})})
    if name == "learned":
        reranker = build_reranker(settings, base.dataset, config, llm=base.llm,
                                  item_index=base.retriever.item_index,
                                  models=base.retriever.collaborative)
    else:
        reranker = Reranker(config.rerank, llm=base.llm, dataset=base.dataset)
    return RecommendPipeline(config, dataset=base.dataset, retriever=base.retriever,
                             reranker=reranker,
                             explainer=base.explainer, profiler=base.profiler, store=base.store,
                             llm=base.llm)


def run_mode(base: RecommendPipeline, mode: str, users: list[str], k: int,
             settings: Settings) -> dict:
    pipeline = for_mode(base, mode, settings)
    pipeline.recommend(users[0], k=k)  # warm-up: encoder, caches, server prefix cache
    times: dict[str, list[float]] = {s: [] for s in STAGES}
    counts = {"rerank_fallbacks": 0, "explain_fallbacks": 0, "invalid_ids": 0,
              "llm_requests": 0, "completion_tokens": 0, "items": 0}
    started = time.perf_counter()
    for user in users:
        result = pipeline.recommend(user, k=k)
        report = result.report
        for stage in STAGES:
            times[stage].append(report.timings.get(stage, 0.0))
        counts["rerank_fallbacks"] += int(report.rerank_fallback)
        counts["explain_fallbacks"] += report.explain_fallbacks
        counts["invalid_ids"] += report.invalid_ids
        counts["llm_requests"] += report.llm_requests
        counts["completion_tokens"] += report.completion_tokens
        counts["items"] += len(result.items)
    wall = time.perf_counter() - started
    stats = {s: dict(zip(("p50", "p95"), percentiles(v))) for s, v in times.items()}
    return {"mode": mode, "users": len(users), "wall_s": wall, "stages": stats, **counts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--modes", default="none,learned-nollm,learned,score")
    parser.add_argument("--profile-source", choices=("facts", "store"), default="facts")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--explain-llm", action="store_true",
                        help="The model writes the explanations (explain.use_llm).")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", type=Path, default=None, help="Also write the figures here.")
    add_results_option(parser, "bench/results/recommend-latency.md")
    args = parser.parse_args()

    settings = load_settings()
    dataset = load_dataset(args.data)
    config = settings.recommend
    config = config.model_copy(update={
        "profile_source": args.profile_source,
        "explain": config.explain.model_copy(update={
            "enabled": not args.no_explain,
            "use_llm": args.explain_llm or config.explain.use_llm})})
    users = random.Random(args.seed).sample(dataset.user_ids, args.users)
    results = []
    t0 = time.perf_counter()
    with create_backend(settings) as llm, \
            RecommendPipeline.from_settings(settings, dataset, llm=llm, config=config) as pipe:
        pipe.warm_up()
        explain = "off" if args.no_explain else "llm" if config.explain.use_llm else "data"
        print(f"pipeline ready in {time.perf_counter() - t0:.1f} s; {len(users)} users, "
              f"k={args.k}, profile_source={args.profile_source}, explain={explain}")
        for mode in args.modes.split(","):
            result = run_mode(pipe, mode.strip(), users, args.k, settings)
            results.append(result)
            print(f"\nrerank={result['mode']}  ({result['users']} users, wall "
                  f"{result['wall_s']:.1f} s)")
            print("  stage      p50 s   p95 s")
            for stage in STAGES:
                s = result["stages"][stage]
                print(f"  {stage:<9} {s['p50']:6.2f}  {s['p95']:6.2f}")
            print(f"  rerank fallbacks {result['rerank_fallbacks']}, explain fallbacks "
                  f"{result['explain_fallbacks']}, invalid ids {result['invalid_ids']}, "
                  f"LLM requests {result['llm_requests']}, completion tokens "
                  f"{result['completion_tokens']}, items {result['items']}")
    if args.json:
        args.json.write_text(json.dumps({"users": users, "k": args.k,
                                         "profile_source": args.profile_source,
                                         "results": results}, indent=2))
    if args.results:
        table = markdown_table([
            {"rerank": r["mode"], "users": r["users"],
             **{f"{stage} p50 / p95 s": f"{r['stages'][stage]['p50']:.2f} / "
                                        f"{r['stages'][stage]['p95']:.2f}"
                for stage in STAGES},
             "re-rank fallbacks": r["rerank_fallbacks"], "LLM requests": r["llm_requests"]}
            for r in results])
        write_results(args.results, "recommend_latency", title="Recommendation latency",
                      table=table, notes=f"{dataset.name}, k = {args.k}, profile_source = "
                                         f"{args.profile_source}, explanations {explain}; "
                                         f"LLM backend {settings.llm.backend}, model "
                                         f"{settings.llm.model}.")


if __name__ == "__main__":
    main()
