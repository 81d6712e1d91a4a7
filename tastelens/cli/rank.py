"""`tastelens rank ...` commands: train the learned re-ranker and show its card."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from tastelens.cli.common import DataOption, SideInfoOption, console, progress_bar, settings_with

app = typer.Typer(no_args_is_help=True)


@app.command("train")
def train(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="Ranker config TOML, e.g. finetune/configs/ranker.toml "
                               "(default: the built-in defaults).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    name: Annotated[Optional[str], typer.Option(
        "--name", help="Save as <cache_dir>/rankers/<dataset>/NAME (overrides the config).")]
    = None,
    llm: Annotated[bool, typer.Option(
        "--llm/--no-llm", help="Train the ensemble that reads the LLM's scores too (asks the "
                               "configured LLM; --no-llm trains the base ensemble only).")]
    = True,
) -> None:
    """Fit the collaborative models, then train the ranker on cross-fitted examples."""
    from tastelens.data import load_for_settings
    from tastelens.finetune.ranker import load_ranker_config, train_serving_ranker
    from tastelens.llm.registry import create_backend

    settings = settings_with(ctx, side_info)
    cfg = load_ranker_config(config, name=name, **({} if llm else {"llm_feature": False}))
    dataset = load_for_settings(settings, data)
    backend = create_backend(settings) if cfg.llm_feature else None
    try:
        with progress_bar() as bar:
            tasks: dict[str, int] = {}

            def progress(stage: str, done: int, total: int) -> None:
                if stage not in tasks:
                    tasks[stage] = bar.add_task(stage, total=total, info="")
                elapsed = bar.tasks[tasks[stage]].elapsed or 0.0
                bar.update(tasks[stage], completed=done, total=total,
                           info=f"{done / elapsed:,.1f}/s" if elapsed > 0 else "")

            folder = train_serving_ranker(settings, dataset, cfg, llm=backend,
                                          progress=progress)
    finally:
        if backend is not None:
            backend.close()
    show_card(folder)


@app.command("show")
def show(
    ctx: typer.Context,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    name: Annotated[str, typer.Option("--name", help="The ranker's name, or a folder.")]
    = "default",
) -> None:
    """Print a trained ranker's card: data, held-out metrics, feature importances."""
    from tastelens.agent.rank.learned import ranker_dir
    from tastelens.data import load_for_settings

    settings = settings_with(ctx, side_info)
    dataset = load_for_settings(settings, data)
    show_card(ranker_dir(settings.cache_dir, dataset.name, name))


def show_card(folder: Path) -> None:
    from tastelens.agent.rank.learned import LearnedRanker

    card = LearnedRanker.load(folder).card
    data, val = card["data"], card["validation"]
    table = Table(title=f"ranker {card['name']} ({folder})", show_header=False)
    table.add_row("cases", f"{data['cases']:,} ({data['labelled_cases']:,} with the target "
                           f"among {data['candidates']} candidates: recall {data['recall']:.3f})")
    table.add_row("LLM-scored cases", str(data["llm_cases"]))
    table.add_row("held-out users", f"{val['users']} ({val['cases']} cases)")
    for key in sorted(k for k in val if k.startswith("ndcg@10")):
        table.add_row(f"held-out {key}", f"{val[key]:.4f}")
    for kind, gains in card["importances"].items():
        top = ", ".join(f"{n} {g:,.0f}" for n, g in list(gains.items())[:6])
        table.add_row(f"top features ({kind})", top)
    console.print(table)
