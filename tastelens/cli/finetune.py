"""`tastelens finetune ...` commands: build fine-tuning data (and, later, train adapters)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from tastelens.cli.common import (
    DataOption,
    SideInfoOption,
    console,
    progress_bar,
    settings_from,
    settings_with,
)

app = typer.Typer(no_args_is_help=True)


class DataTask(str, Enum):
    rank = "rank"
    profile = "profile"


@app.command("data")
def data(
    ctx: typer.Context,
    task: Annotated[DataTask, typer.Argument(
        help="'rank': re-ranker examples; 'profile': profiler examples.")],
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="Data config TOML, e.g. finetune/configs/rank-data.toml.")],
    data: DataOption = None,
    side_info: SideInfoOption = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output folder (default: the config's `out`, else "
                      "<cache_dir>/finetune/data/<task>-<dataset>).")] = None,
) -> None:
    """Build train.jsonl, eval.jsonl and card.json from the training split of a dataset."""
    from rich.table import Table

    from tastelens.data.loader import load_for_settings
    from tastelens.finetune.data_build import build_data
    from tastelens.finetune.data_config import load_data_config

    settings = settings_with(ctx, side_info)
    # Bad config values fail here, before the dataset is read or anything is built.
    cfg = load_data_config(config, task.value)
    dataset = load_for_settings(settings, data or cfg.data)
    with progress_bar() as bar:
        job = bar.add_task(f"{task.value} examples", total=None, info="")

        def progress(done: int, total: int) -> None:
            elapsed = bar.tasks[job].elapsed or 0.0
            rate = f"{done / elapsed:,.1f} users/s" if elapsed > 0 else ""
            bar.update(job, completed=done, total=total, info=rate)

        result = build_data(cfg, settings, dataset=dataset, out=out, progress=progress)

    table = Table(title=f"{task.value} data: {result.out_dir}", show_header=False)
    for label, value in result.card.summary_rows():
        table.add_row(label, value)
    console.print(table)
    console.print(f"Wrote {result.out_dir}/ (train.jsonl, eval.jsonl, card.json)")


@app.command("train")
def train(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="Training config TOML, e.g. finetune/configs/rank-cpu.toml.")],
    resume: Annotated[bool, typer.Option(
        "--resume/--no-resume", help="Continue from the newest checkpoint in the output "
                                     "folder (default), or start over.")] = True,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output folder (default: the config's output_dir).")] = None,
    data_dir: Annotated[Optional[Path], typer.Option(
        "--data", help="Fine-tuning data folder (default: the config's data_dir).")] = None,
    max_steps: Annotated[Optional[int], typer.Option(
        "--max-steps", min=1, help="Stop after N optimizer steps (overrides the config).")]
    = None,
) -> None:
    """Train a LoRA adapter; writes <out>/adapter/ (peft folder + metrics.json)."""

    from tastelens.finetune.train import TrainProgress
    from tastelens.finetune.train import train as run_training
    from tastelens.finetune.train_config import load_train_config

    settings = settings_from(ctx)
    # Every config and data problem fails here, before the model is loaded.
    cfg = load_train_config(config, max_lora_rank=settings.llm.max_lora_rank,
                            output_dir=out, data_dir=data_dir, max_steps=max_steps)
    with progress_bar() as bar:
        job = bar.add_task("loading model", total=None, info="")
        last_eval: list[str] = [""]

        def progress(p: TrainProgress) -> None:
            if p.eval_loss is not None:
                last_eval[0] = f" eval {p.eval_loss:.4f}"
            loss = f"loss {p.loss:.4f}" if p.loss is not None else ""
            bar.update(job, description="training", completed=p.step, total=p.total_steps,
                       info=f"{loss}{last_eval[0]}  {p.tokens_per_s:,.0f} tok/s  "
                            f"epoch {p.epoch:.2f}")
            if p.message:
                bar.console.print(f"step {p.step}: {p.message}")

        result = run_training(cfg, settings, resume=resume, progress=progress)

    m = result.metrics
    console.print(f"{m['steps']} steps ({m['epochs']} epochs) in {m['wall_time_s']:.0f} s, "
                  f"{m['tokens_per_s']:,.0f} tokens/s, peak RSS {m['peak_memory']['rss_mib']:,.0f}"
                  f" MiB; final train loss {m['train_loss'][-1][1]:.4f}" if m["train_loss"]
                  else f"{m['steps']} steps")
    if m["best_eval_loss"] is not None:
        console.print(f"eval loss: first {m['eval_loss'][0][1]:.4f}, best "
                      f"{m['best_eval_loss']:.4f} at step {m['best_step']} "
                      f"(adapter: {m['final_adapter']} weights)"
                      + ("; stopped early" if m["stopped_early"] else ""))
    console.print(f"Wrote {result.adapter_dir}/ (peft adapter, train_config.json, card.json, "
                  "metrics.json)")


@app.command("merge")
def merge(
    ctx: typer.Context,
    adapter: Annotated[Path, typer.Argument(
        help="A peft adapter folder, e.g. runs/finetune/rank-cpu/adapter.")],
    out: Annotated[Path, typer.Option(
        "--out", help="Folder for the merged checkpoint (written in one rename).")],
    dtype: Annotated[str, typer.Option(
        "--dtype", help="Saved weights: float32 (default), bfloat16 or float16.")] = "float32",
) -> None:
    """Fold a LoRA adapter into the base weights (llm.model) and save a checkpoint that
    serves under its own name: settings llm.merged = {NAME = "<out>"}."""
    from tastelens.finetune.merge import merge_adapter
    from tastelens.llm.models import resolve_model_path

    settings = settings_from(ctx)
    with console.status(f"merging {adapter} into {settings.llm.model}"):
        folder = merge_adapter(adapter, resolve_model_path(settings), out, dtype=dtype)
    console.print(f"Wrote {folder}/ (checkpoint + merged.json). Serve it by name, e.g. "
                  f"TASTELENS_LLM__MERGED='{{\"rank-merged\": \"{folder}\"}}' with "
                  "recommend.rerank.adapter = \"rank-merged\".")
