"""LoRA training throughput and memory for a training config, over a few steps.

    .venv/bin/python bench/finetune_throughput.py --config finetune/configs/rank-cpu.toml
        [--steps 4] [--data DIR] [--batch-size N] [--max-seq-len N] [--eval-examples 8]
        [--dtype float32|bfloat16] [--out FILE] [--results FILE]

Runs the real :func:`tastelens.finetune.train.train` (the loop ``tastelens finetune train``
runs) for ``--steps`` optimizer steps into a temporary folder (no eval, no checkpoints except
one at the end), then times one eval pass over ``--eval-examples`` examples, and prints:
training tokens/s (prompt + target tokens through forward and backward), seconds per step,
peak RSS (``resource.getrusage``) and peak CUDA allocation on a GPU, and an estimate of the
full config's wall time — its steps at the measured rate plus its evals at the measured eval
rate. The first step pays one-off warm-up, so use at least 3 steps. The load average is
printed with the figures: on a shared machine they are lower bounds of what an idle one does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from tastelens.benchresults import add_results_option, figures_table, write_results
from tastelens.config.settings import load_settings
from tastelens.finetune.collate import ChatEncoder, encode_examples
from tastelens.finetune.lora_model import eval_loss
from tastelens.finetune.train import train
from tastelens.finetune.train_config import load_examples, load_train_config
from tastelens.fsutil import atomic_write_json
from tastelens.runinfo import run_record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--max-seq-len", type=int, default=None)
    parser.add_argument("--eval-examples", type=int, default=8)
    parser.add_argument("--dtype", default=None,
                        help="Override the config's dtype (auto, float32, bfloat16).")
    parser.add_argument("--out", type=Path, default=None, help="Also write figures as JSON.")
    add_results_option(parser, "bench/results/finetune-throughput.md")
    args = parser.parse_args()

    settings = load_settings()
    full = load_train_config(args.config, max_lora_rank=settings.llm.max_lora_rank,
                             data_dir=args.data, batch_size=args.batch_size,
                             max_seq_len=args.max_seq_len)
    with tempfile.TemporaryDirectory(prefix="ft-bench-") as tmp:
        short = full.with_overrides(max_steps=args.steps, eval_every=0, eval_at_start=False,
                                    early_stopping_patience=0, checkpoint_every=args.steps,
                                    output_dir=Path(tmp),
                                    **({"dtype": args.dtype} if args.dtype else {}))
        started = time.perf_counter()
        result = train(short, settings, resume=False)
        seconds = time.perf_counter() - started
        m = result.metrics
        eval_rate = time_eval(short, settings, args.eval_examples, Path(tmp))

    n_train = m["n_train"]
    full_steps = full.total_steps(n_train)
    tokens_per_step = m["tokens"] / max(m["steps"], 1)
    train_s = full_steps * tokens_per_step / max(m["tokens_per_s"], 1e-9)
    n_evals = (full_steps // full.eval_every + bool(full_steps % full.eval_every)
               + full.eval_at_start) if full.eval_every else 0
    eval_examples = min(full.eval_max_examples or m["n_eval"], m["n_eval"]) if n_evals else 0
    eval_s = n_evals * eval_examples / eval_rate if eval_rate else 0.0
    figures = {
        "config": str(args.config), "steps": m["steps"], "batch_size": short.batch_size,
        "grad_accum": short.grad_accum, "tokens": m["tokens"],
        "tokens_per_step": round(tokens_per_step, 1), "tokens_per_s": m["tokens_per_s"],
        "seconds_per_step": round(m["train_seconds"] / max(m["steps"], 1), 2),
        "eval_examples_per_s": round(eval_rate, 2), "peak_memory": m["peak_memory"],
        "train_loss": [round(loss, 4) for _, loss in m["train_loss"]],
        "run_seconds_incl_load": round(seconds, 1), "device": m["device"], "dtype": m["dtype"],
        "full_config": {"steps": full_steps, "train_examples": n_train, "evals": n_evals,
                        "estimated_train_min": round(train_s / 60, 1),
                        "estimated_eval_min": round(eval_s / 60, 1),
                        "estimated_total_min": round((train_s + eval_s) / 60, 1)},
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    for key, value in figures.items():
        print(f"{key:>24}: {value}")
    if args.out:
        atomic_write_json(args.out, run_record(full.model_dump(mode="json"), figures=figures))
    if args.results:
        write_results(args.results, "finetune_throughput", title="LoRA training throughput",
                      table=figures_table(figures),
                      notes=f"Config {args.config}, {args.steps} steps.")


def time_eval(config, settings, n: int, tmp: Path) -> float:
    """Eval examples per second (forward only), on a fresh copy of the model."""
    from tastelens.finetune.lora_model import base_model_path, load_lora_model, resolve_device

    if n <= 0:
        return 0.0
    _, evaluation = load_examples(config.with_overrides(eval_every=1))
    device, dtype = resolve_device(config)
    model, tokenizer = load_lora_model(config, base_model_path(config, settings), device, dtype)
    encoder = ChatEncoder(tokenizer, end_token_loss=config.end_token_loss)
    encoded, _ = encode_examples(encoder, evaluation[:n], config.max_seq_len)
    if not encoded:
        return 0.0
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    started = time.perf_counter()
    eval_loss(model, encoded, config.eval_batch_size or config.batch_size, pad, device)
    return len(encoded) / (time.perf_counter() - started)


if __name__ == "__main__":
    main()
