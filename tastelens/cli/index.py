"""`tastelens index ...` commands: build and query the Chroma item text index."""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.table import Table

from tastelens.cli.common import DataOption, SideInfoOption, console, settings_with
from tastelens.config.pipeline import MAX_K

app = typer.Typer(no_args_is_help=True)

EmbedderOption = Annotated[
    Optional[str],
    typer.Option("--embedder", help="Sentence-transformers model id or folder "
                 "(default: settings embedder.model, all-MiniLM-L6-v2; 'hashing' = test fake)."),
]


def _open_index(ctx: typer.Context, data, embedder, side_info=None):  # noqa: ANN001, ANN202
    from tastelens.data import load_for_settings
    from tastelens.vectorstore.encoders import encoder_from_settings
    from tastelens.vectorstore.item_index import ItemIndex

    settings = settings_with(ctx, side_info)
    dataset = load_for_settings(settings, data)
    encoder = encoder_from_settings(settings, embedder)
    return dataset, ItemIndex.for_dataset(settings, dataset.name, encoder)


@app.command("build")
def build(
    ctx: typer.Context,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    embedder: EmbedderOption = None,
    rebuild: Annotated[bool, typer.Option(
        "--rebuild", help="Drop the collection first and embed every item again.")] = False,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="Items embedded and written per step.")] = 256,
) -> None:
    """Embed the catalog into Chroma; reruns embed only new or changed items."""
    dataset, index = _open_index(ctx, data, embedder, side_info)
    if rebuild:
        index.drop()
    console.print(f"[bold]{dataset.name}[/]: {dataset.n_items:,} items -> "
                  f"collection [cyan]{index.name}[/] ({index.encoder.model_id})")
    report = index.build(dataset.items.values(), batch_size=batch_size, progress=True)
    table = Table(title="index build", show_header=False)
    for key in ("collection", "model", "added", "updated", "unchanged", "removed"):
        table.add_row(key, str(getattr(report, key)))
    table.add_row("seconds", f"{report.seconds:.1f} (embed {report.embed_seconds:.1f}, "
                             f"write {report.write_seconds:.1f})")
    table.add_row("items in index", f"{index.count():,}")
    console.print(table)


@app.command("query")
def query(
    ctx: typer.Context,
    text: Annotated[str, typer.Argument(help="Free text, e.g. 'toy cowboy animation'.")],
    k: Annotated[int, typer.Option("--k", min=1, max=MAX_K, help="How many items to show.")
                 ] = 10,
    genre: Annotated[Optional[list[str]], typer.Option(
        "--genre", help="Keep items in this genre (repeat for any of several).")] = None,
    year_min: Annotated[Optional[int], typer.Option("--year-min")] = None,
    year_max: Annotated[Optional[int], typer.Option("--year-max")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    embedder: EmbedderOption = None,
) -> None:
    """Nearest catalog items to TEXT by embedding similarity."""
    from tastelens.data.categories import check_year_range, match_categories
    from tastelens.vectorstore.item_index import item_filter

    dataset, index = _open_index(ctx, data, embedder, side_info)
    genres = match_categories(genre or (), dataset.categories, field="--genre")
    check_year_range(year_min, year_max, names=("--year-min", "--year-max"))
    hits = index.query_text([text], k, where=item_filter(genres, year_min, year_max))[0]
    meta = index.get_metadata([item_id for item_id, _ in hits])
    table = Table(title=f"{index.name}: {text!r}")
    for column in ("#", "id", "title", "year", "genres"):
        table.add_column(column)
    table.add_column("similarity", justify="right")
    for rank, (item_id, score) in enumerate(hits, 1):
        m = meta.get(item_id, {})
        table.add_row(str(rank), item_id, str(m.get("title", "")), str(m.get("year", "")),
                      ", ".join(m.get("categories", [])), f"{score:.3f}")
    console.print(table)
    if not hits:
        console.print("[yellow]no items match these filters[/]")


@app.command("behaviour")
def behaviour(ctx: typer.Context, data: DataOption = None,
              side_info: SideInfoOption = None) -> None:
    """Train (or load) the collaborative models on the dataset's interactions and publish
    the sequence model's item vectors to Chroma's behaviour collection."""
    import time

    from tastelens.agent.serving import behaviour_index, collaborative_models
    from tastelens.data import load_for_settings
    from tastelens.errors import ConfigError

    settings = settings_with(ctx, side_info)
    config = settings.recommend
    if not config.collaborative.enabled:
        raise ConfigError("recommend.collaborative.enabled is false: nothing to train")
    dataset = load_for_settings(settings, data)
    started = time.perf_counter()
    models = collaborative_models(settings, dataset, config, train=True)
    index = behaviour_index(settings, models)
    assert models is not None and index is not None
    sasrec = models.sasrec
    table = Table(title="collaborative models", show_header=False)
    table.add_row("dataset", f"{dataset.name}: {len(dataset.interactions):,} events, "
                             f"{dataset.n_items:,} items")
    table.add_row("sequence model", f"SASRec {models.tag}: "
                  + (f"trained {sasrec.epochs_run} epochs now" if sasrec.epochs_run
                     else "loaded") + f", best epoch {sasrec.best_epoch}")
    if sasrec.history:
        best = max(r["val_ndcg10"] for r in sasrec.history)
        table.add_row("held-out NDCG@10", f"{best:.4f} (each user's newest event)")
    table.add_row("item-item model", "EASE" if models.ease is not None else "none")
    table.add_row("behaviour collection", f"{index.name} ({index.count():,} vectors)")
    table.add_row("seconds", f"{time.perf_counter() - started:.1f}")
    console.print(table)
