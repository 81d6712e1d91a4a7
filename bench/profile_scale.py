"""The profile job on one process vs on Ray Data, on the same users, cores and vLLM server.

    .venv/bin/python bench/profile_scale.py [--data DIR] [--users 24] [--workers 2]
        [--concurrency 16] [--replicas URL,URL] [--out FILE] [--results FILE]

Both runs are the real job (selection, facts, token-budgeted prompt, guided JSON,
validation, the store) into fresh temporary stores: (a) ``run_profile_job`` in this
process with ``--concurrency`` requests in flight; (b) ``run_profile_job_ray`` on a local Ray
instance with ``--workers`` actors, each with ``concurrency / workers`` in flight, so the
server sees the same load. The LLM is one vLLM server (started here on a free port, its
start-up reported apart) or the running ``--replicas``. On one machine the server's cores
are the bottleneck for both, so expect parity: the difference is Ray's overhead (its start
is timed apart from the job).

Prints per engine: seconds, users/s, completion tokens/s, and tokens per user (prompt and
completion, as the server counted them: the figure a capacity plan starts from).

``--overhead N`` measures the engines alone instead: N users, an LLM stand-in that answers
at once (every request refused, so every profile is the data-facts one), no server. The
difference is what Ray costs per job and per user when the LLM is not the bottleneck.
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time
from pathlib import Path

from tastelens.agent.jobs.profile_job import ProfileJobSummary, run_profile_job
from tastelens.agent.jobs.ray_profile import ProfilerSpec, run_profile_job_ray
from tastelens.agent.jobs.raycluster import ray_session
from tastelens.agent.profile.profiler import Profiler, renderer_for_settings
from tastelens.benchresults import add_results_option, markdown_table, write_results
from tastelens.config.settings import load_settings
from tastelens.data.loader import load_dataset, resolve_data_path
from tastelens.fsutil import atomic_write_json
from tastelens.llm.base import ChatFailure, LLMBackend
from tastelens.llm.fake import FakeBackend
from tastelens.llm.replicas import ReplicaBackend
from tastelens.llm.vllm_server import VLLMBackend, free_port
from tastelens.profile_store import ProfileStore
from tastelens.runinfo import run_record


def figures(summary: ProfileJobSummary, **extra: float) -> dict[str, float]:
    n = max(summary.attempted, 1)
    return {"users": summary.attempted, "seconds": round(summary.seconds, 1),
            "users_per_s": round(summary.users_per_second, 3),
            "completion_tok_per_s": round(summary.tokens_per_second, 1),
            "prompt_tokens_per_user": round(summary.prompt_tokens / n, 1),
            "completion_tokens_per_user": round(summary.completion_tokens / n, 1),
            "llm_profiles": summary.profiled_llm, "fallbacks": summary.fallbacks,
            "invalid_first": summary.invalid_first, **extra}


class Refusing:
    """The ``--overhead`` stand-in LLM (a class, so Ray can ship it to the workers)."""

    def __call__(self) -> LLMBackend:
        return FakeBackend(responder=lambda r: ChatFailure(kind="bad_request", message="bench"))


def overhead(dataset, settings, config, users: list[str], workers: int) -> list[dict]:  # noqa: ANN001
    spec = ProfilerSpec(settings, config, backend_factory=Refusing())
    with tempfile.TemporaryDirectory() as tmp:
        with ProfileStore(Path(tmp) / "a.sqlite") as store:
            local = run_profile_job(dataset, spec.profiler(spec.backend()), store, users)
        t0 = time.perf_counter()
        with ray_session(None, num_cpus=workers + 1):
            start = time.perf_counter() - t0
            with ProfileStore(Path(tmp) / "b.sqlite") as store:
                on_ray = run_profile_job_ray(dataset, spec, store, users, workers=workers,
                                             batch_size=16)
    print(f"{len(users)} users, LLM stand-in, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}: single process {local.seconds:.1f} s "
          f"({1000 * local.seconds / len(users):.0f} ms/user); Ray ({workers} workers) "
          f"{on_ray.seconds:.1f} s ({1000 * on_ray.seconds / len(users):.0f} ms/user) + "
          f"{start:.1f} s to start Ray")
    return [{"engine": "single process", "users": len(users), "seconds": local.seconds,
             "ms per user": 1000 * local.seconds / len(users), "start s": 0.0},
            {"engine": f"ray ({workers} workers)", "users": len(users), "seconds": on_ray.seconds,
             "ms per user": 1000 * on_ray.seconds / len(users), "start s": start}]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--users", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--replicas", default=None, help="Running servers (…/v1), comma-separated.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--overhead", type=int, default=None, metavar="N",
                        help="Measure the engines alone on N users (no LLM).")
    add_results_option(parser, "bench/results/ray.md")
    args = parser.parse_args()

    base = load_settings()
    dataset = load_dataset(resolve_data_path(base, args.data))
    users = random.Random(args.seed).sample(list(dataset.user_ids), args.users)
    config = base.recommend.profiler.model_copy(update={"concurrency": args.concurrency})
    if args.overhead:
        users = random.Random(args.seed).sample(list(dataset.user_ids), args.overhead)
        rows = overhead(dataset, base, config, users, args.workers)
        if args.results:
            write_results(args.results, "profile_scale_overhead",
                          title="The profile job on Ray Data", table=markdown_table(rows),
                          notes=f"`--overhead`: an LLM stand-in that answers at once, so only "
                                f"the engines are timed; {len(users)} users of {dataset.name}.")
        return

    managed = None
    startup = 0.0
    if args.replicas:
        urls = [u.strip() for u in args.replicas.split(",") if u.strip()]
    else:
        llm = base.llm.model_copy(update={"port": free_port(), "base_url": None})
        managed = VLLMBackend.from_settings(base.model_copy(update={"llm": llm}))
        t0 = time.perf_counter()
        managed.start()
        startup = time.perf_counter() - t0
        urls = [managed.base_url]
    settings = base.model_copy(update={"llm": base.llm.model_copy(
        update={"backend": "replicas", "replicas": urls})})
    results: dict[str, dict[str, float]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            with ReplicaBackend.from_settings(settings) as backend, \
                    ProfileStore(Path(tmp) / "local.sqlite") as store:
                backend.check()
                profiler = Profiler(backend, renderer_for_settings(settings), config)
                results["single process"] = figures(run_profile_job(dataset, profiler, store,
                                                                     users))
            per_worker = config.model_copy(
                update={"concurrency": max(1, args.concurrency // args.workers)})
            t0 = time.perf_counter()
            with ray_session(None, num_cpus=args.workers + 1):
                ray_start = time.perf_counter() - t0
                with ProfileStore(Path(tmp) / "ray.sqlite") as store:
                    summary = run_profile_job_ray(dataset, ProfilerSpec(settings, per_worker),
                                                  store, users, workers=args.workers,
                                                  batch_size=max(8, per_worker.concurrency))
                    sizes = [len(store.get(u).profile_json.encode()) for u in users]
            results[f"ray ({args.workers} workers)"] = figures(
                summary, ray_start_s=round(ray_start, 1),
                profile_bytes=round(sum(sizes) / len(sizes)))
    finally:
        if managed is not None:
            managed.close()

    load = os.getloadavg()
    print(f"{len(users)} users of {dataset.name}, {os.cpu_count()} cores, load "
          f"{load[0]:.1f}; vLLM start-up {startup:.0f} s; replicas {urls}")
    header = ("engine", "seconds", "users/s", "tok/s", "prompt tok/user", "compl. tok/user",
              "LLM / fallback")
    print(" | ".join(header))
    for name, f in results.items():
        print(f"{name} | {f['seconds']} | {f['users_per_s']} | {f['completion_tok_per_s']} | "
              f"{f['prompt_tokens_per_user']} | {f['completion_tokens_per_user']} | "
              f"{f['llm_profiles']} / {f['fallbacks']}"
              + (f" | Ray start {f['ray_start_s']} s" if "ray_start_s" in f else ""))
    single, ray_run = list(results.values())
    print(f"Ray / single-process wall time: {ray_run['seconds'] / single['seconds']:.2f}×; "
          f"a stored profile is {ray_run['profile_bytes']} bytes of JSON on average")
    if args.out:
        atomic_write_json(args.out, run_record(vars(args) | {"data": str(dataset.source)},
                                               results=results, vllm_startup_s=startup,
                                               load=load))
    if args.results:
        write_results(args.results, "profile_scale", title="The profile job on Ray Data",
                      table=markdown_table([{"engine": name, **f} for name, f in results.items()]),
                      notes=f"{len(users)} users of {dataset.name} (seed {args.seed}), "
                            f"{args.concurrency} requests in flight ({args.workers} Ray workers "
                            f"sharing them); vLLM start-up {startup:.0f} s; replicas {urls}.")


if __name__ == "__main__":
    main()
