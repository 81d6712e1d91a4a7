"""Serving a ranking adapter: LoRA on the base server vs a merged checkpoint on its own.

    .venv/bin/python bench/adapter_serving.py --adapter runs/finetune/rank-cpu/adapter
        --merged runs/finetune/rank-cpu/merged [--data runs/ft-data/rank] [--n 96]
        [--concurrency 16] [--out FILE] [--results FILE]

Starts the real vLLM servers through the 'vllm' backend with ``llm.adapters =
{rank-lora: ADAPTER}`` and ``llm.merged = {rank-merged: MERGED}`` (one LoRA-enabled server for
the base model and the adapter, one plain server for the merged checkpoint), then sends the
same ``--n`` score-mode ranking prompts (``eval.jsonl`` of the ranking data: one token,
top-20 log-probabilities, exactly what the re-ranker sends) three ways, interleaved
over ``--rounds`` rounds so machine noise hits all of them alike:

- ``base``: the base model on the LoRA-enabled server (what un-adapted requests pay there);
- ``lora``: the adapter on that server;
- ``merged``: the merged checkpoint on its own server.

Prints requests/s of each, the ratios merged/lora and base/lora, and how closely the merged
model's answers match the adapter's (same top letter; mean |Δ log-probability| of the
target letter) — a merge that changed the model would show here.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from tastelens.benchresults import add_results_option, figures_table, write_results
from tastelens.config.settings import load_settings
from tastelens.finetune.jsonl import EVAL_FILE, read_jsonl
from tastelens.fsutil import atomic_write_json
from tastelens.llm.base import ChatMessage, ChatRequest
from tastelens.llm.vllm_server import VLLMBackend, free_port
from tastelens.runinfo import run_record

MODES = {"base": None, "lora": "rank-lora", "merged": "rank-merged"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--adapter", type=Path, required=True)
    parser.add_argument("--merged", type=Path, required=True)
    parser.add_argument("--data", type=Path, default=Path("runs/ft-data/rank"))
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    add_results_option(parser, "bench/results/serving.md")
    args = parser.parse_args()

    examples = read_jsonl(args.data / EVAL_FILE)[: args.n]
    settings = load_settings()
    port = free_port()
    llm = settings.llm.model_copy(update={
        "port": port, "base_url": None, "adapters": {"rank-lora": args.adapter},
        "merged": {"rank-merged": args.merged}})
    settings = settings.model_copy(update={"llm": llm})
    backend = VLLMBackend.from_settings(settings)

    def requests(adapter: str | None) -> list[ChatRequest]:
        return [ChatRequest(messages=tuple(ChatMessage(role=m.role, content=m.content)
                                           for m in e.messages),
                            max_tokens=1, temperature=0.0, logprobs=20, adapter=adapter)
                for e in examples]

    seconds = {mode: 0.0 for mode in MODES}
    answers: dict[str, list] = {}
    try:
        started = time.perf_counter()
        for adapter in MODES.values():  # start both servers; warm each path once
            backend.generate(requests(adapter)[:2], concurrency=2)
        print(f"servers up and warm in {time.perf_counter() - started:.0f} s")
        for _ in range(args.rounds):
            for mode, adapter in MODES.items():
                batch = requests(adapter)
                t0 = time.perf_counter()
                answers[mode] = backend.generate(batch, concurrency=args.concurrency)
                seconds[mode] += time.perf_counter() - t0
    finally:
        backend.close()

    n = len(examples) * args.rounds
    rate = {mode: n / s for mode, s in seconds.items()}
    agree, gaps = [], []
    for e, lora, merged in zip(examples, answers["lora"], answers["merged"]):
        if not (lora.ok and merged.ok and lora.logprobs and merged.logprobs):
            continue
        agree.append(lora.logprobs[0].token == merged.logprobs[0].token)
        a = {**lora.logprobs[0].top, lora.logprobs[0].token: lora.logprobs[0].logprob}
        b = {**merged.logprobs[0].top, merged.logprobs[0].token: merged.logprobs[0].logprob}
        if e.target in a and e.target in b:
            gaps.append(abs(a[e.target] - b[e.target]))
    figures = {
        "requests_per_mode": n, "concurrency": args.concurrency,
        "requests_per_s": {m: round(r, 2) for m, r in rate.items()},
        "merged_over_lora": round(rate["merged"] / rate["lora"], 2),
        "base_over_lora": round(rate["base"] / rate["lora"], 2),
        "same_top_letter": round(float(np.mean(agree)), 3) if agree else None,
        "mean_abs_target_logprob_gap": round(float(np.mean(gaps)), 4) if gaps else None,
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    if args.out:
        atomic_write_json(args.out, run_record(vars(args) | {"data": str(args.data)},
                                               figures=figures))
    if args.results:
        write_results(args.results, "adapter_serving", title="Serving the LLM on CPU",
                      table=figures_table(figures),
                      notes=f"Adapter {args.adapter} as LoRA, merged {args.merged}; the same "
                            f"score-mode prompts of {args.data} each way, interleaved over "
                            f"{args.rounds} rounds.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
