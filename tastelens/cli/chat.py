"""`tastelens chat`: a recommendation chat in the terminal (a REPL over stdin).

Each line is one message to a :class:`~tastelens.agent.chat.session.ChatSession`; the reply sentence
is printed with the list as a rich table (or, with ``--json``, one ChatTurn JSON object per
line). Ends at EOF, 'quit' or 'exit'. Scripted use: ``printf 'like Heat\\nno horror\\n' |
tastelens chat --user 1``.
"""

from __future__ import annotations

import sys
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from tastelens.cli.common import (
    DataOption,
    SideInfoOption,
    console,
    err_console,
    settings_with,
    start_llm,
    uses_llm,
)
from tastelens.config.pipeline import MAX_K
from tastelens.errors import TastelensError, UnknownIdError
from tastelens.llm.deadline import llm_deadline

QUIT = {"quit", "exit", ":q", "bye!"}


def build_backend(settings):
    """The LLM backend the chat and the pipeline share (a seam for tests)."""
    from tastelens.llm.registry import create_backend

    return create_backend(settings)


def build_pipeline(settings, dataset, llm):
    """The recommendation pipeline (a seam for tests)."""
    from tastelens.agent.pipeline import RecommendPipeline

    return RecommendPipeline.from_settings(settings, dataset, llm=llm, missing_ranker=True)


def chat(
    ctx: typer.Context,
    user: Annotated[Optional[str], typer.Option(
        "--user", help="User id whose history and profile to use; omit for a new visitor "
                       "(what you say becomes the profile).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print each turn as one JSON object per line (no tables).")] = False,
    mode: Annotated[str, typer.Option(
        "--mode", help="'intent' (rules + guided JSON; works with the small default model) "
                       "or 'tools' (LangChain tool-calling agent; needs a capable model).")
    ] = "intent",
    k: Annotated[Optional[int], typer.Option(
        "--k", min=1, max=MAX_K, help="Items per answer (default: settings chat.k).")] = None,
    no_llm: Annotated[bool, typer.Option(
        "--no-llm", help="Read messages with the rules only (the pipeline may still use "
                         "the LLM).")] = False,
) -> None:
    """Chat about recommendations: 'something like Heat but funnier', 'no horror', 'more
    recent ones', 'why the second one?', 'show me more', 'reset'."""
    from tastelens.agent.chat.session import ChatSession
    from tastelens.data import load_for_settings

    if mode not in ("intent", "tools"):
        raise typer.BadParameter("--mode must be 'intent' or 'tools'")
    settings = settings_with(ctx, side_info)
    dataset = load_for_settings(settings, data)
    if user is not None and user not in set(dataset.user_ids):
        raise UnknownIdError(f"unknown user id {user!r} in dataset {dataset.name!r} "
                             f"(ids look like {', '.join(dataset.user_ids[:3])})")
    chat_config = settings.chat
    config = chat_config.model_copy(update={
        "mode": mode, "k": chat_config.k if k is None else k,
        "use_llm": chat_config.use_llm and not no_llm})
    llm = build_backend(settings)
    pipeline = None
    try:
        pipeline = build_pipeline(settings, dataset, llm)
        session = ChatSession.from_settings(settings, dataset, user=user, llm=llm,
                                            pipeline=pipeline, config=config)
        if not as_json:
            who = f"user {user}" if user is not None else "a new visitor"
            console.print(f"[bold]tastelens chat[/] · {dataset.name} · {who} · "
                          "'quit' or Ctrl-D to leave")
            for notice in getattr(pipeline, "notices", ()):
                console.print(f"[yellow]note:[/] {escape(notice)}")
        if config.use_llm or uses_llm(settings.recommend, getattr(pipeline, "reranker", None)):
            start_llm(llm)
        # Load the retriever's text encoder now: a session-start cost, not the first turn's.
        warm = getattr(getattr(pipeline, "retriever", None), "warm_up", None)
        if callable(warm):
            warm()
        _loop(session, dataset, as_json, settings.llm.interactive_deadline_s)
    finally:
        if pipeline is not None and hasattr(pipeline, "close"):
            pipeline.close()
        llm.close()


def _loop(session, dataset, as_json: bool, deadline_s: float | None = None) -> None:
    interactive = sys.stdin.isatty() and not as_json
    while True:
        try:
            line = console.input("[bold cyan]you>[/] ") if interactive else sys.stdin.readline()
        except (EOFError, KeyboardInterrupt):
            break
        if not interactive and line == "":
            break  # EOF
        message = line.strip()
        if not message:
            continue
        if message.casefold() in QUIT:
            break
        if not as_json and not interactive:
            console.print(f"[bold cyan]you>[/] {message}")
        try:
            with llm_deadline(deadline_s):  # one LLM budget per turn, however many calls
                turn = session.respond(message)
        except TastelensError as exc:  # one bad turn (e.g. an index problem) ends nothing
            err_console.print(f"Error: {exc}")
            continue
        if as_json:
            typer.echo(turn.model_dump_json())
            continue
        console.print(f"[bold green]tastelens>[/] {turn.text}")
        if turn.recommendations is not None and turn.recommendations.items:
            console.print(render_list(turn.recommendations, dataset))
        intent = turn.intent
        ranking = ""
        if turn.recommendations is not None:
            report = turn.recommendations.report
            ranking = escape(f" · ranking: retrieval order ({report.rerank_fallback_reason})"
                             if report.rerank_fallback else f" · ranking: {report.rerank}")
        console.print(f"[dim]{turn.seconds:.2f} s · {turn.report.kind} · read by "
                      f"{turn.report.path} (llm {intent.llm}){ranking}[/]")


def render_list(result, dataset) -> Table:
    """The recommendations as a table: rank, title, genres, why."""
    table = Table("#", "title", "genres", "why", expand=True, show_lines=False)
    for rec in result.items:
        item = dataset.items.get(rec.item)
        genres = ", ".join(item.categories) if item is not None else ""
        why = rec.explanation.text if rec.explanation is not None else ""
        mark = " (explore)" if rec.source == "explored" else ""
        table.add_row(str(rec.rank), rec.title + mark, genres, why)
    return table
