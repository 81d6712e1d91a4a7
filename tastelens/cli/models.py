"""`tastelens models ...`: prepare the default LLM checkpoint and describe the configured one."""

from __future__ import annotations

import json
import time
from typing import Annotated

import typer
from rich.table import Table

from tastelens.cli.common import console, settings_from

app = typer.Typer(no_args_is_help=True)


@app.command("prepare")
def prepare(
    ctx: typer.Context,
    force: Annotated[bool, typer.Option(
        "--force", help="Convert again even when a complete checkpoint is cached.")] = False,
) -> None:
    """Convert the packaged SmolLM2-135M-Instruct GGUF into a safetensors checkpoint (once)."""
    from tastelens.llm.models import (
        DEFAULT_MODEL,
        default_model_dir,
        prepare_default_model,
        resolve_model_path,
    )

    settings = settings_from(ctx)
    if settings.llm.model != DEFAULT_MODEL:
        path = resolve_model_path(settings)
        console.print(f"llm.model is {settings.llm.model!r} ({path}): nothing to prepare",
                      highlight=False, soft_wrap=True)
        return
    started = time.perf_counter()
    with console.status(f"preparing {DEFAULT_MODEL} …") as status:
        def step(message: str) -> None:
            status.update(f"{message} … ({time.perf_counter() - started:.0f} s)")

        path = prepare_default_model(settings, force=force, on_step=step)
    seconds = time.perf_counter() - started
    if seconds < 1 and not force:
        console.print(f"{DEFAULT_MODEL} already prepared in {path}", highlight=False,
                      soft_wrap=True)
    else:
        console.print(f"prepared {DEFAULT_MODEL} in {seconds:.0f} s: {default_model_dir(settings)}",
                      highlight=False, soft_wrap=True)


@app.command("info")
def info(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Path, architecture, parameter count and context length of the configured model."""
    from tastelens.llm.models import model_info

    settings = settings_from(ctx)
    details = model_info(settings)
    if as_json:
        console.print_json(details.model_dump_json())
        return
    table = Table(title=f"model {details.name}", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", overflow="fold")
    rows = [
        ("path", str(details.path)),
        ("architecture", details.architecture or "?"),
        ("parameters", f"{details.parameters:,} ({details.parameters / 1e6:.1f} M)"),
        ("context length", f"{details.context_length:,}" if details.context_length else "?"),
        ("served with max_model_len", f"{settings.llm.max_model_len:,}"),
        ("vocabulary", f"{details.vocab_size:,}" if details.vocab_size else "?"),
        ("dtype on disk", details.dtype or "?"),
        ("size on disk", f"{details.size_bytes / 2**20:,.0f} MiB"),
        ("chat template", "yes" if details.has_chat_template else "NO"),
        ("backend", settings.llm.backend),
        ("adapters", json.dumps({k: str(v) for k, v in settings.llm.adapters.items()})
         if settings.llm.adapters else "none"),
    ]
    if details.prepared_from:
        rows.append(("prepared from", details.prepared_from))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)
