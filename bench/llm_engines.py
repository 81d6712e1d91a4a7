"""Throughput of the LLM backends on the default model, measured in one run.

    .venv/bin/python bench/llm_engines.py [--concurrent N] [--max-tokens 64] [--out FILE]
        [--results FILE]

Steps: prepare the default checkpoint (timed, or its recorded time when already cached);
start a vLLM server on a free port (start-up timed) and measure through OUR client
(:class:`tastelens.llm.vllm_server.VLLMBackend`): requests one at a time, then N concurrent,
then N guided-JSON structured requests; stop the server; then the in-process transformers
backend one request at a time. Prints tokens/s and the ratio to transformers. The machine
should be otherwise idle: the figures are CPU-bound (the load average is printed with them).

Two defaults rest on what it measured (SmolLM2-135M, 2 CPU cores): starting vLLM with LoRA
support cost about 40% of concurrent throughput, base-model requests included, so
``llm.enable_lora`` is off unless adapters are configured; guided JSON without optional
whitespace (``llm.compact_json``) left 11 of 16 structured replies valid against 15 of 16
with it (the model ran on inside string values), so it is off too.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from pydantic import BaseModel, Field

from tastelens.benchresults import add_results_option, figures_table, write_results
from tastelens.config.settings import load_settings
from tastelens.fsutil import atomic_write_json
from tastelens.llm import ChatResult, LLMBackend, user
from tastelens.llm.models import MARKER, prepare_default_model
from tastelens.llm.transformers_local import TransformersBackend
from tastelens.llm.vllm_server import VLLMBackend, VLLMServer, free_port
from tastelens.runinfo import run_record

TOPICS = ["a rainy night in Paris", "a heist gone wrong", "two rival chefs", "a haunted lighthouse",
          "a robot learning to paint", "a small-town detective", "a space station mutiny",
          "a family road trip", "a jazz musician's comeback", "a dragon who fears fire",
          "a chess prodigy", "a lost city in the jungle", "a wedding that goes wrong",
          "a time-travelling librarian", "a submarine crew", "an unlikely friendship"]


class Pitch(BaseModel):
    title: str
    genre: str
    year: int


class BoundedPitch(BaseModel):
    """The same with bounds the grammar enforces (what callers' schemas should do)."""

    title: str = Field(max_length=60)
    genre: str = Field(max_length=30)
    year: int = Field(ge=1900, le=2030)


def prompts(n: int, max_tokens: int) -> list:
    return [user(f"Write a short movie plot about {TOPICS[i % len(TOPICS)]}.",
                 max_tokens=max_tokens) for i in range(n)]


def throughput(llm: LLMBackend, requests: list, concurrency: int) -> dict[str, float]:
    started = time.perf_counter()
    if concurrency > 1:
        results = llm.generate(requests, concurrency=concurrency)
    else:
        results = [llm.chat(r) for r in requests]
    seconds = time.perf_counter() - started
    done = [r for r in results if isinstance(r, ChatResult)]
    tokens = sum(r.completion_tokens for r in done)
    return {"requests": len(requests), "failed": len(requests) - len(done),
            "completion_tokens": tokens, "seconds": round(seconds, 2),
            "tok_per_s": round(tokens / seconds, 1),
            "mean_latency_s": round(sum(r.latency_s for r in done) / max(1, len(done)), 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--single", type=int, default=4, help="sequential vLLM requests")
    parser.add_argument("--concurrent", type=int, default=None,
                        help="concurrent vLLM requests (default: settings llm.concurrency)")
    parser.add_argument("--transformers", type=int, default=3,
                        help="sequential transformers requests (0 = skip)")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    add_results_option(parser, "bench/results/serving.md")
    args = parser.parse_args()

    settings = load_settings()
    concurrent = args.concurrent or settings.llm.concurrency
    figures: dict[str, object] = {"load_average_before": os.getloadavg()}
    started = time.perf_counter()
    model_dir = prepare_default_model(settings)
    prep_s = time.perf_counter() - started
    recorded = json.loads((model_dir / MARKER).read_text())["seconds"]
    figures["prepare"] = {"seconds_this_run": round(prep_s, 2), "seconds_recorded": recorded}
    print(f"prepare: {prep_s:.1f} s this run (conversion recorded {recorded} s)")

    server = VLLMServer(settings, port=free_port())
    server.start()
    try:
        figures["vllm_startup_s"] = round(server.wait_healthy(), 1)
        print(f"vLLM server healthy after {figures['vllm_startup_s']} s")
        with VLLMBackend(base_url=server.base_url, model=server.served_name) as llm:
            llm.generate(prompts(2, 8))  # warm-up: first-request overheads
            figures["vllm_single"] = throughput(llm, prompts(args.single, args.max_tokens), 1)
            print("vllm one at a time:", figures["vllm_single"])
            figures["vllm_concurrent"] = throughput(
                llm, prompts(concurrent, args.max_tokens), concurrent)
            print(f"vllm {concurrent} concurrent:", figures["vllm_concurrent"])
            for key, schema in (("vllm_structured", Pitch),
                                ("vllm_structured_bounded", BoundedPitch)):
                llm.reset_stats()
                t0 = time.perf_counter()
                outcomes = llm.structured_many(
                    [user(f"Invent a movie about {TOPICS[i % len(TOPICS)]}: title, genre, "
                          "year.", max_tokens=96) for i in range(concurrent)], schema,
                    concurrency=concurrent)
                figures[key] = {
                    "requests": len(outcomes), "valid": sum(o.ok for o in outcomes),
                    "seconds": round(time.perf_counter() - t0, 2), **llm.stats.model_dump(
                        include={"invalid_first", "invalid_after_retry", "completion_tokens"}),
                    "failures": [o.error for o in outcomes if not o.ok][:2]}
                print(f"{key} (guided JSON, {schema.__name__}):", figures[key])
    finally:
        server.stop()

    if args.transformers:
        backend = TransformersBackend(model_path=str(model_dir))
        t0 = time.perf_counter()
        backend.load()
        figures["transformers_load_s"] = round(time.perf_counter() - t0, 1)
        backend.chat(prompts(1, 8)[0])  # warm-up
        figures["transformers_single"] = throughput(
            backend, prompts(args.transformers, args.max_tokens), 1)
        print("transformers one at a time:", figures["transformers_single"])
        base = figures["transformers_single"]["tok_per_s"]  # type: ignore[index]
        figures["ratio_vs_transformers"] = {
            key: round(figures[key]["tok_per_s"] / base, 1)  # type: ignore[index]
            for key in ("vllm_single", "vllm_concurrent")}
        print("tok/s ratio vs transformers one at a time:", figures["ratio_vs_transformers"])
    figures["load_average_after"] = os.getloadavg()
    if args.out:
        atomic_write_json(args.out, run_record(vars(args) | {"out": str(args.out)},
                                               figures=figures))
    if args.results:
        write_results(args.results, "llm_engines", title="Serving the LLM on CPU",
                      table=figures_table(figures),
                      notes=f"Model {settings.llm.model}, dtype {settings.llm.dtype}, "
                            f"{args.max_tokens}-token replies.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
