"""`tastelens quickstart`: from a fresh install to a chat, each step timed.

The steps a chat needs, each skipped when its result is already in the cache:

1. the catalog (``--data``, the settings' ``data``, or MovieLens ml-latest-small downloaded);
2. the Chroma item index (``tastelens index build``; an evaluation run on the same catalog
   and embedder has built it already);
3. with ``--full``, the collaborative models on every interaction (``tastelens index
   behaviour``; minutes: SASRec trains on every interaction);
4. the default LLM's checkpoint (``tastelens models prepare``) when the chat reads with a
   local model (not with ``--no-llm``, another model or a server of your own);

then it opens ``tastelens chat`` with the same options. What is not there yet the chat
serves without, and says so: without the collaborative models lists come from the item text,
the catalog's descriptors and popularity; without the learned ranker (``tastelens rank
train``, the longest step) a dataset user's list keeps the retrieval order. ``--steps-only``
stops before the chat (scripts, CI).
"""

from __future__ import annotations

import time
from typing import Annotated, Optional

import typer

from tastelens.cli import chat as chat_cmd
from tastelens.cli.common import DataOption, SideInfoOption, console, settings_with
from tastelens.errors import UnknownIdError


def quickstart(
    ctx: typer.Context,
    user: Annotated[Optional[str], typer.Option(
        "--user", help="Chat as this dataset user (default: a new visitor).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    no_llm: Annotated[bool, typer.Option(
        "--no-llm", help="Read messages with the rules only: no LLM server is started.")
    ] = False,
    full: Annotated[bool, typer.Option(
        "--full", help="Train the collaborative models first (better lists, minutes more).")
    ] = False,
    steps_only: Annotated[bool, typer.Option(
        "--steps-only", help="Prepare everything the chat needs, then stop.")] = False,
) -> None:
    """Prepare what a chat needs (catalog, item index; --full: collaborative models),
    timing each step, then open the chat."""
    from tastelens.agent.serving import behaviour_index, collaborative_models
    from tastelens.data import load_for_settings
    from tastelens.llm.models import DEFAULT_MODEL, prepare_default_model
    from tastelens.vectorstore.encoders import encoder_from_settings
    from tastelens.vectorstore.item_index import ItemIndex

    settings = settings_with(ctx, side_info)
    began = time.perf_counter()

    def done(step: str, started: float, what: str) -> None:
        console.print(f"[green]✓[/] {step}: {what} ({time.perf_counter() - started:.0f} s)")

    started = time.perf_counter()
    console.print("[bold]1/4[/] the catalog")
    dataset = load_for_settings(settings, data)
    done("catalog", started, f"{dataset.name}, {dataset.n_items:,} items, "
                             f"{len(dataset.interactions):,} interactions")
    if user is not None and user not in set(dataset.user_ids):  # before minutes of work
        raise UnknownIdError(f"unknown user id {user!r} in dataset {dataset.name!r} "
                             f"(ids look like {', '.join(dataset.user_ids[:3])})")

    started = time.perf_counter()
    console.print("[bold]2/4[/] the item index (embeds each item once; reruns skip them)")
    index = ItemIndex.for_dataset(settings, dataset.name, encoder_from_settings(settings))
    report = index.build(dataset.items.values(), progress=True)
    done("item index", started, f"{report.added:,} embedded, {report.unchanged:,} unchanged")

    started = time.perf_counter()
    if not settings.recommend.collaborative.enabled:
        console.print("[bold]3/4[/] collaborative models: off in the settings")
    else:
        console.print("[bold]3/4[/] the collaborative models (SASRec, EASE)")
        models = collaborative_models(settings, dataset, settings.recommend, train=full,
                                      missing=not full)  # loaded when trained before
        if models is None:
            console.print("  not trained yet: the chat answers without them (`tastelens "
                          "quickstart --full` or `tastelens index behaviour` trains them)")
        else:
            behaviour_index(settings, models)
            done("collaborative models", started,
                 f"SASRec {models.tag}: " + (f"trained {models.sasrec.epochs_run} epochs"
                                             if models.sasrec.epochs_run else "loaded"))
    started = time.perf_counter()
    if not no_llm and settings.chat.use_llm and settings.llm.model == DEFAULT_MODEL \
            and settings.llm.backend in ("vllm", "transformers") and not settings.llm.base_url:
        console.print(f"[bold]4/4[/] the LLM: {DEFAULT_MODEL} (converted once)")
        path = prepare_default_model(settings)
        done("LLM", started, str(path))
    else:
        console.print("[bold]4/4[/] the LLM: nothing to prepare")
    console.print(f"Ready in {time.perf_counter() - began:.0f} s.")
    if steps_only:
        return
    ctx.invoke(chat_cmd.chat, ctx=ctx, user=user, data=data, side_info=side_info,
               as_json=False, mode="intent", k=None, no_llm=no_llm)
