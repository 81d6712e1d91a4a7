"""`tastelens data ...` commands: fetch a MovieLens archive, describe a dataset."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from tastelens.cli.common import DataOption, SideInfoOption, console, settings_from, settings_with

app = typer.Typer(no_args_is_help=True)


@app.command("fetch")
def fetch(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(
        help="movielens-small (ml-latest-small), movielens-100k or movielens-1m.")
    ] = "movielens-small",
    force: Annotated[bool, typer.Option(
        "--force", help="Download again even when a complete copy is cached.")] = False,
) -> None:
    """Download a MovieLens archive into <cache_dir>/datasets, verify it and unpack it."""
    from tastelens.data.download import dataset_dir, fetch_dataset, is_complete, remote_dataset

    settings = settings_from(ctx)
    cached = not force and is_complete(dataset_dir(name, settings.cache_dir), remote_dataset(name))
    path = fetch_dataset(name, settings.cache_dir, progress=True, force=force)
    state = "already cached in" if cached else "downloaded to"
    console.print(f"{name} {state} {path}", soft_wrap=True, highlight=False)


@app.command("info")
def info(
    ctx: typer.Context,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the figures as JSON.")] = False,
) -> None:
    """Users, items, interactions, rating and time range, density, the share of items and
    interactions with descriptors (keywords/tags) and the loader's report."""
    from tastelens.data import describe, load_for_settings

    dataset = load_for_settings(settings_with(ctx, side_info), data)
    figures = describe(dataset)
    if as_json:
        console.print_json(json.dumps(figures, default=str))
        return
    table = Table(title=f"dataset {figures['name']}", show_header=False, title_justify="left")
    table.add_column("figure", style="bold")
    table.add_column("value", overflow="fold")
    per_user = figures["interactions_per_user"]
    rating_range = figures["rating_range"]
    time_range = figures["time_range"]
    rows = [
        ("source", str(figures["source"])),
        ("format", str(figures["format"])),
        ("users", f"{figures['users']:,}"),
        ("items", (f"{figures['items']:,} ({figures['items_with_interactions']:,} with "
                   "interactions)")),
        ("interactions", f"{figures['interactions']:,}"),
        ("per user", (f"min {per_user['min']}, median {per_user['median']:g}, "
                      f"max {per_user['max']}")),
        ("rating range", f"{rating_range[0]:g} – {rating_range[1]:g} (mean "
                         f"{figures['rating_mean']:.2f})" if rating_range else "no ratings"),
        ("time range", f"{time_range[0]} – {time_range[1]}" if time_range else "no timestamps"),
        ("density", f"{figures['density']:.4%}"),
        ("descriptors", _descriptor_row(figures["descriptors"])),
    ]
    for key, value in dataset.report.items():
        if key not in ("users", "items", "interactions", "format"):
            rows.append((f"loader: {key}", _fmt(value)))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


def _descriptor_row(found: dict) -> str:
    if not found["distinct"]:
        return "none (no keywords or tags; see --side-info)"
    return (f"{found['distinct']:,} distinct; on {found['items_share']:.1%} of items "
            f"({found['items']:,}, median {found['median_per_item']:g} each) and "
            f"{found['interactions_share']:.1%} of interactions")


def _fmt(value: object) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_fmt(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return str(value)
