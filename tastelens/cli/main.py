"""The `tastelens` command: a thin typer app; each command group lives in its own module."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from typer.core import TyperGroup

from tastelens.cli import api as api_cmd
from tastelens.cli import chat as chat_cmd
from tastelens.cli import data as data_cmd
from tastelens.cli import eval as eval_cmd
from tastelens.cli import finetune as finetune_cmd
from tastelens.cli import index as index_cmd
from tastelens.cli import models as models_cmd
from tastelens.cli import profile as profile_cmd
from tastelens.cli import quickstart as quickstart_cmd
from tastelens.cli import rank as rank_cmd
from tastelens.cli import recommend as recommend_cmd
from tastelens.cli import serve as serve_cmd
from tastelens.cli import tokens as tokens_cmd
from tastelens.config.settings import load_settings
from tastelens.errors import TastelensError


class _Group(TyperGroup):
    """Turns a TastelensError into a one-line message and exit code 1, no traceback."""

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except TastelensError as exc:
            # typer >= 0.20 vendors click, so a `click.ClickException` is no longer caught
            # by typer's main loop (it printed a traceback); print and exit ourselves.
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from exc


app = typer.Typer(
    cls=_Group, no_args_is_help=True, add_completion=False, pretty_exceptions_show_locals=False,
    help="tastelens: an LLM-agent recommender with retrieval, re-ranking and offline evaluation.")
app.add_typer(data_cmd.app, name="data", help="Fetch and inspect datasets.")
app.add_typer(index_cmd.app, name="index", help="Build and query the Chroma item index.")
app.add_typer(eval_cmd.app, name="eval", help="Offline evaluation runs.")
app.add_typer(models_cmd.app, name="models", help="Prepare and inspect LLM checkpoints.")
app.add_typer(profile_cmd.app, name="profile", help="Interest profiles: build jobs and show.")
app.add_typer(finetune_cmd.app, name="finetune", help="Fine-tuning data and LoRA adapters.")
app.add_typer(rank_cmd.app, name="rank", help="Train and inspect the learned re-ranker.")
app.add_typer(tokens_cmd.app, name="token",
              help="Per-user tokens of the HTTP API: issue, list, revoke.")
app.command("serve", help="Start the vLLM server (with LoRA adapters) until Ctrl-C.")(
    serve_cmd.serve)
app.command("recommend", help="Top-k explained recommendations for one user.")(
    recommend_cmd.recommend)
app.command("api", help="Serve the HTTP API (recommend, chat, profiles) until Ctrl-C.")(
    api_cmd.api)
app.command("chat", help="Chat about recommendations (a REPL over stdin).")(chat_cmd.chat)
app.command("quickstart", help="Prepare what a chat needs (index, collaborative models), "
            "timing each step, then open the chat.")(quickstart_cmd.quickstart)


@app.callback()
def _root(
    ctx: typer.Context,
    settings_file: Annotated[Optional[Path], typer.Option(
        "--settings", help="Settings TOML (default: ./tastelens.toml when present).")] = None,
    cache_dir: Annotated[Optional[Path], typer.Option(
        "--cache-dir", help="Cache for downloads, indexes and checkpoints.")] = None,
) -> None:
    ctx.obj = {"settings": load_settings(settings_file, cache_dir=cache_dir)}


TERMINATING = (signal.SIGTERM, signal.SIGHUP)


def install_signal_handlers() -> None:
    """SIGTERM (kill, a process manager, a CI timeout) and SIGHUP (the terminal closed) unwind
    like an exception, so every ``finally`` and context manager runs: a vLLM server a command
    started is stopped, staged output removed. Python's default would end the process at once
    and orphan the server (it runs in a session of its own). SIGINT already raises
    KeyboardInterrupt. ``tastelens api``'s uvicorn takes SIGTERM over while it serves and
    re-raises it after a graceful shutdown, which lands here."""
    for signum in TERMINATING:
        signal.signal(signum, _terminate)


def _terminate(signum: int, frame: object) -> None:
    # One unwinding at a time: a second signal while the servers are being stopped would cut
    # that short (stopping is bounded: SIGKILL after a grace period).
    for other in TERMINATING:
        signal.signal(other, signal.SIG_IGN)
    raise SystemExit(128 + signum)


def main() -> None:  # the console script (pyproject [project.scripts])
    install_signal_handlers()
    app()
