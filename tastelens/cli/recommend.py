"""`tastelens recommend`: one user's top-k explained recommendations, as a table or JSON.

An interactive command: the LLM server is found (or started) first, then the recommendation's
LLM calls share one deadline (``llm.interactive_deadline_s``); a stage whose call runs out
falls back and the report line says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape
from rich.table import Table

from tastelens.cli.common import (
    DataOption,
    SideInfoOption,
    console,
    settings_with,
    start_llm,
    uses_llm,
)
from tastelens.cli.engine import (
    AddressOption,
    EngineOption,
    ReplicasOption,
    WorkersOption,
    check_engine,
)
from tastelens.config.pipeline import MAX_K
from tastelens.errors import ConfigError

RERANK_MODES = ("none", "listwise", "score")


def recommend(
    ctx: typer.Context,
    user: Annotated[Optional[str], typer.Option("--user", help="User id of the dataset.")] = None,
    k: Annotated[Optional[int], typer.Option(
        "--k", min=1, max=MAX_K,
        help=f"How many items, 1..{MAX_K} (default: settings recommend.k, 10).")] = None,
    as_json: Annotated[bool, typer.Option(
        "--json", help="Print the RecommendationList as JSON.")] = False,
    rerank: Annotated[Optional[str], typer.Option(
        "--rerank", help="Re-ranking: none | listwise | score "
                         "(default: settings recommend.rerank.mode).")] = None,
    no_explain: Annotated[bool, typer.Option(
        "--no-explain", help="Skip the explanation stage (faster).")] = False,
    genre: Annotated[Optional[list[str]], typer.Option(
        "--genre", help="Keep items in this genre (repeat for any of several).")] = None,
    exclude_genre: Annotated[Optional[list[str]], typer.Option(
        "--exclude-genre", help="Drop items in this genre (repeatable).")] = None,
    year_min: Annotated[Optional[int], typer.Option("--year-min")] = None,
    year_max: Annotated[Optional[int], typer.Option("--year-max")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    all_users: Annotated[bool, typer.Option(
        "--all", help="Every user of the dataset, into --out (the nightly batch job).")] = False,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="With --all: the Parquet file to write (user, rank, item, title, "
                      "score, source, reason).")] = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    replicas: ReplicasOption = None,
    workers: WorkersOption = 2,
    batch_size: Annotated[int, typer.Option(
        "--batch-size", min=1, help="With --all: users per pipeline call.")] = 16,
) -> None:
    """Recommend items for USER (profile, retrieval, LLM re-ranking and explanations), or
    for every user into a Parquet file (--all --out FILE.parquet)."""
    from tastelens.agent.pipeline import RecommendPipeline
    from tastelens.agent.recommendation import Constraints
    from tastelens.data import load_for_settings
    from tastelens.llm.deadline import llm_deadline

    check_engine(engine, address)
    if all_users == (user is not None):
        raise ConfigError("give either --user ID or --all (with --out FILE.parquet)")
    if all_users and (out is None or out.suffix != ".parquet"):
        raise ConfigError(f"--all needs --out FILE.parquet (got {out})")
    if not all_users and (out is not None or engine != "local"):
        raise ConfigError("--out and --engine are for --all")
    settings = settings_with(ctx, side_info)
    config = settings.recommend
    if rerank is not None:
        if rerank not in RERANK_MODES:
            raise ConfigError(f"--rerank {rerank!r}: expected one of {', '.join(RERANK_MODES)}")
        config = config.model_copy(update={
            "rerank": config.rerank.model_copy(update={"mode": rerank})})
    if no_explain:
        config = config.model_copy(update={
            "explain": config.explain.model_copy(update={"enabled": False})})
    constraints = Constraints(include_categories=genre or [],
                              exclude_categories=exclude_genre or [],
                              year_min=year_min, year_max=year_max)
    dataset = load_for_settings(settings, data)
    constraints = constraints.checked(  # before anything slow starts
        dataset.categories, labels=("--genre", "--exclude-genre", "--year-min", "--year-max"))
    if all_users:
        if constraints != Constraints():
            raise ConfigError("--genre / --exclude-genre / --year-* are for --user")
        _recommend_all(settings, config, dataset, out, k=k, engine=engine, address=address,
                       replicas=replicas, workers=workers, batch_size=batch_size)
        return
    with RecommendPipeline.from_settings(settings, dataset, config=config) as pipeline:
        status = console.status(f"recommending for user {user} …")
        if not as_json:
            status.start()
        try:
            if uses_llm(config, pipeline.reranker):
                start_llm(pipeline.llm)
            with llm_deadline(settings.llm.interactive_deadline_s):
                result = pipeline.recommend(user, k=k, constraints=constraints)
        finally:
            status.stop()
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    console.print(render_recommendations(result, dataset))
    console.print(report_line(result.report), highlight=False, soft_wrap=True, markup=False)


def _recommend_all(settings, config, dataset, out: Path, *, k, engine, address, replicas,  # noqa: ANN001
                   workers, batch_size) -> None:
    from contextlib import nullcontext

    from tastelens.agent.jobs.batch import recommend_all
    from tastelens.agent.jobs.raycluster import ray_session
    from tastelens.agent.jobs.servers import worker_settings
    from tastelens.cli.common import progress_bar
    from tastelens.cli.engine import parse_replicas

    users = list(dataset.user_ids)
    # The LLM servers are found (or started) once, before the job, only if the pipeline asks
    # the LLM anything; with --engine ray every worker then calls them.
    servers = (worker_settings(settings, parse_replicas(replicas))
               if engine == "ray" and uses_llm(config) else nullcontext(settings))
    with servers as shared:
        session = (ray_session(address, num_cpus=workers + 1) if engine == "ray"
                   else nullcontext())
        with session, progress_bar() as progress:
            task = progress.add_task("recommend --all", total=len(users), info="")

            def advance(n: int) -> None:
                progress.advance(task, n)
                secs = progress.tasks[0].elapsed or 1e-6
                progress.update(task, info=f"{progress.tasks[0].completed / secs:.2f} users/s")

            summary = recommend_all(shared, dataset, users, out, config=config, k=k,
                                    engine=engine, batch_size=batch_size, workers=workers,
                                    on_batch=advance)
    console.print(f"{summary.users} users, {summary.rows} rows → {out} in "
                  f"{summary.seconds:.1f} s ({summary.users_per_second:.2f} users/s, "
                  f"engine {engine}; {summary.rerank_fallbacks} lists in retrieval order "
                  "after a re-rank fallback)", highlight=False, soft_wrap=True)


def render_recommendations(result, dataset) -> Table:  # noqa: ANN001
    """A table: rank, title, score, source and the reason with the history titles it cites."""
    table = Table(title=f"recommendations for user {result.user}", expand=True)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("title", ratio=2)
    table.add_column("score", justify="right", no_wrap=True)
    table.add_column("source", no_wrap=True)
    table.add_column("why", ratio=4)
    for rec in result.items:
        why = ""
        if rec.explanation is not None:
            why = escape(rec.explanation.text)
            cited = [dataset.items[i].title for i in rec.explanation.evidence[:3]
                     if i in dataset.items]
            if cited and not any(title in rec.explanation.text for title in cited):
                why += f"  [dim](like: {escape('; '.join(cited))})[/]"
            if rec.explanation.source == "data":
                why += " [dim](data template)[/]"
        table.add_row(str(rec.rank), escape(rec.title), f"{rec.score:.3f}", rec.source, why)
    return table


def report_line(report) -> str:  # noqa: ANN001
    """One line: stage times, re-ranking and its fallback, explanation fallbacks, tokens."""
    t = report.timings
    stages = " ".join(f"{s} {t[s]:.2f}s" for s in ("profile", "retrieve", "rerank", "explain")
                      if s in t)
    rerank = report.rerank + (f" (FALLBACK: {report.rerank_fallback_reason or 'failed'})"
                              if report.rerank_fallback else "")
    profile = report.profile_source + (" (fallback)" if report.profile_fallback else "")
    return (f"total {t.get('total', 0.0):.2f}s · {stages} · profile {profile} · rerank {rerank}"
            f" · invalid ids {report.invalid_ids} · explain fallbacks {report.explain_fallbacks}"
            f" · candidates {report.candidates} · explored {report.explored}"
            f" · LLM {report.llm_requests} req, {report.prompt_tokens}+"
            f"{report.completion_tokens} tok")
