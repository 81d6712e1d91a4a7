"""Helpers every command module shares: the console, resolved settings, common options."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console

from tastelens.config.pipeline import PipelineConfig
from tastelens.config.settings import Settings, load_settings

console = Console()
err_console = Console(stderr=True)

DataOption = Annotated[
    Optional[Path],
    typer.Option("--data", help="Dataset folder (MovieLens small/100k/1m or generic). "
                 "Default: settings `data`, else the cached ml-latest-small download."),
]


SideInfoOption = Annotated[
    Optional[Path],
    typer.Option("--side-info", help="Side-information file (.csv/.tsv/.jsonl: item keywords "
                 "and descriptions) joined onto the items by id or through links.csv. "
                 "Default: settings `side_info`."),
]


def settings_with(ctx: typer.Context, side_info: Path | None = None) -> Settings:
    """:func:`settings_from`, with ``--side-info`` (when given) in ``side_info``, so every
    later step (eval configs, the API's pipeline, the jobs) loads the same items."""
    settings = settings_from(ctx)
    if side_info is not None:
        settings = settings.model_copy(update={"side_info": side_info})
        ctx.find_root().obj["settings"] = settings
    return settings


def uses_llm(config: PipelineConfig, reranker: object = None) -> bool:
    """Whether a recommendation with ``config`` (and its re-rank stage ``reranker``) asks the
    LLM anything. The learned ranker asks it only when it has an LLM part in use."""
    rerank = (config.rerank.mode in ("score", "listwise")
              or (config.rerank.mode == "learned" and bool(getattr(reranker, "use_llm", False))))
    return (rerank or (config.explain.enabled and config.explain.use_llm)
            or config.profile_source == "llm"
            or (config.profile_source == "store" and config.on_missing_profile == "llm"))


def start_llm(llm: object) -> None:
    """Find (or start) the LLM server now, so its start-up is not charged to the first
    request's interactive deadline."""
    start = getattr(llm, "start", None)
    if callable(start):
        start()


def settings_from(ctx: typer.Context) -> Settings:
    """The settings resolved once by the top-level callback."""
    root = ctx.find_root()
    if not isinstance(root.obj, dict) or "settings" not in root.obj:
        root.obj = {"settings": load_settings()}
    return root.obj["settings"]


def progress_bar():  # noqa: ANN202 - a rich Progress, imported lazily
    """Description, bar, done/total, a free-text ``info`` field, elapsed and remaining time;
    plain progress lines instead when the output is not a terminal (tastelens/progress.py)."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from tastelens.progress import LoggedProgress

    return LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                    TimeRemainingColumn(), console=console)
