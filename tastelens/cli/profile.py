"""`tastelens profile build|show`: the profile summarization job and one user's profile."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from tastelens.cli.common import DataOption, SideInfoOption, console, settings_with
from tastelens.cli.engine import (
    AddressOption,
    EngineOption,
    ReplicasOption,
    WorkersOption,
    check_engine,
)
from tastelens.fsutil import atomic_write_json
from tastelens.progress import LoggedProgress
from tastelens.runinfo import run_record

app = typer.Typer(no_args_is_help=True)


def _store_path(settings, dataset, store: Path | None) -> Path:
    from tastelens.profile_store import default_store_path

    return store or default_store_path(settings.cache_dir, dataset.name)


StoreOption = Annotated[Optional[Path], typer.Option(
    "--store", help="Profile database (default <cache_dir>/profiles/<dataset>.sqlite).")]


@app.command("build")
def build(
    ctx: typer.Context,
    users: Annotated[str, typer.Option(
        "--users", help="'all', comma-separated ids, or 'sample N' (seeded).")] = "all",
    concurrency: Annotated[Optional[int], typer.Option(
        "--concurrency", help="Requests in flight (default: settings "
                              "recommend.profiler.concurrency, else llm.concurrency); per "
                              "worker and replica with --engine ray.",
        min=1)] = None,
    max_attempts: Annotated[int, typer.Option(
        "--max-attempts", min=1, help="Give up on a user after this many failed runs.")] = 2,
    adapter: Annotated[Optional[str], typer.Option(
        "--adapter", help="Profile adapter to answer with: a name served through llm.merged "
                          "or llm.adapters (default: settings recommend.profiler.adapter). "
                          "A stored profile made by another model or adapter is rebuilt.")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    store: StoreOption = None,
    engine: EngineOption = "local",
    address: AddressOption = None,
    replicas: ReplicasOption = None,
    workers: WorkersOption = 2,
) -> None:
    """Profile many users; finished users are skipped, changed histories recomputed."""
    from tastelens.agent.jobs.profile_job import UserSelection
    from tastelens.data import load_for_settings
    from tastelens.profile_store import ProfileStore

    check_engine(engine, address)
    settings = settings_with(ctx, side_info)
    dataset = load_for_settings(settings, data)
    selected = UserSelection.parse(users, seed=settings.seed).resolve(dataset)
    config = settings.recommend.profiler
    if concurrency is not None:
        config = config.model_copy(update={"concurrency": concurrency})
    if adapter is not None:
        config = config.model_copy(update={"adapter": adapter})
    path = _store_path(settings, dataset, store)
    started_at = datetime.now(timezone.utc)
    progress = LoggedProgress(  # plain lines when the output is not a terminal
        TextColumn("[bold]profiles"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), console=console)
    with ProfileStore(path) as profile_store:
        run = _run_on_ray if engine == "ray" else _run_here
        summary, profiler = run(settings, dataset, config, profile_store, selected, progress,
                                max_attempts=max_attempts, address=address,
                                replicas=replicas, workers=workers)
    record = run_record(
        {"settings": json.loads(settings.model_dump_json()), "profiler": config.model_dump(),
         "users": users, "dataset": str(dataset.source), "store": str(path),
         "engine": engine, "address": address, "workers": workers if engine == "ray" else 1},
        summary=summary.model_dump(), model=profiler.model_name,
        prompt_version=profiler.renderer.prompt_version)
    runs_dir = path.parent / "runs"
    atomic_write_json(runs_dir / f"{dataset.name}-{started_at:%Y%m%dT%H%M%S}.json", record)
    _print_summary(summary, path)


def _ticker(progress: Progress, total: int, tokens=None):  # noqa: ANN001, ANN202
    """Start the bar; return the per-profile callback that advances it and shows rates."""
    task = progress.add_task("profiles", total=total, rate="")
    t0 = datetime.now(timezone.utc)  # after any server start-up: rates are the job's

    def tick(profile, diag) -> None:  # noqa: ANN001
        secs = max((datetime.now(timezone.utc) - t0).total_seconds(), 1e-6)
        done = progress.tasks[0].completed + 1
        rate = f"{done / secs:.2f} users/s"
        if tokens is not None:
            rate += f"  {tokens() / secs:.0f} tok/s"
        progress.update(task, advance=1, rate=rate)  # one update: a log line has this rate

    return tick


def _run_here(settings, dataset, config, store, selected, progress, *, max_attempts,  # noqa: ANN001, ANN202
              **_ray_options):
    from tastelens.agent.jobs.profile_job import run_profile_job
    from tastelens.agent.profile.profiler import Profiler, renderer_for_settings
    from tastelens.llm.registry import create_backend

    with create_backend(settings) as backend:
        profiler = Profiler(backend, renderer_for_settings(settings), config)
        with progress:
            tick = _ticker(progress, len(selected), lambda: backend.stats.completion_tokens)
            summary = run_profile_job(dataset, profiler, store, selected,
                                      max_attempts=max_attempts, on_profile=tick)
            progress.update(progress.task_ids[0], completed=len(selected))
    return summary, profiler


def _run_on_ray(settings, dataset, config, store, selected, progress, *, max_attempts,  # noqa: ANN001, ANN202
                address, replicas, workers):
    from tastelens.agent.jobs.ray_profile import ProfilerSpec, run_profile_job_ray
    from tastelens.agent.jobs.raycluster import ray_session
    from tastelens.agent.jobs.servers import worker_settings
    from tastelens.cli.engine import parse_replicas

    with worker_settings(settings, parse_replicas(replicas)) as shared:
        spec = ProfilerSpec(shared, config)
        driver = spec.profiler(spec.backend())  # keys and the run record; no LLM call
        try:
            # The session first: a bad address fails before the progress bar takes the
            # terminal.
            with ray_session(address, num_cpus=workers + 1), progress:
                tick = _ticker(progress, len(selected))
                summary = run_profile_job_ray(dataset, spec, store, selected, workers=workers,
                                              max_attempts=max_attempts, on_profile=tick,
                                              driver=driver)
                progress.update(progress.task_ids[0], completed=len(selected))
        finally:
            driver.backend.close()
        return summary, driver


def _print_summary(summary, path: Path) -> None:
    table = Table(title="profile job", show_header=False)
    for label, value in [
        ("selected users", summary.selected),
        ("skipped (already current)", summary.skipped_current),
        ("skipped (gave up after max attempts)", summary.skipped_given_up),
        ("profiled", summary.attempted),
        ("  interests from the model", summary.profiled_llm),
        ("  fallback to data facts (recorded as failures)", summary.fallbacks),
        ("invalid replies / repaired / still invalid after the retry",
         f"{summary.invalid_first} / {summary.repaired} / {summary.invalid_after_retry}"),
        ("request errors", summary.request_errors),
        ("dropped interests / evidence ids",
         f"{summary.dropped_interests} / {summary.dropped_evidence}"),
        ("tokens in / out", f"{summary.prompt_tokens} / {summary.completion_tokens}"),
        ("time", f"{summary.seconds:.1f} s  ({summary.users_per_second:.2f} users/s, "
                 f"{summary.tokens_per_second:.0f} tok/s)"),
        ("store", str(path)),
    ]:
        table.add_row(label, str(value))
    if summary.fallback_reasons:
        table.add_row("fallback reasons", json.dumps(summary.fallback_reasons))
    console.print(table)


@app.command("show")
def show(
    ctx: typer.Context,
    user: Annotated[str, typer.Argument(help="User id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the profile as JSON.")] = False,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    store: StoreOption = None,
) -> None:
    """Print a user's latest stored profile."""
    from tastelens.data import load_for_settings
    from tastelens.profile_store import ProfileStore
    from tastelens.schemas import InterestProfile

    settings = settings_with(ctx, side_info)
    dataset = load_for_settings(settings, data)
    with ProfileStore(_store_path(settings, dataset, store)) as profile_store:
        stored = profile_store.get(user)
    profile = InterestProfile.model_validate_json(stored.profile_json)
    if as_json:
        typer.echo(profile.model_dump_json(indent=2))
        return
    console.print(render_profile(profile, dataset, stored.version))


def render_profile(profile, dataset, version: int) -> Panel:
    """A rich panel: summary, interests with evidence titles, categories, drift, dislikes."""
    from rich.console import Group
    from rich.text import Text

    def titles(ids: list[str]) -> str:
        return "; ".join(dataset.items[i].title if i in dataset.items else i for i in ids[:3])

    interests = Table("interest", "granularity", "weight", "evidence", title="interests",
                      expand=True)
    for it in profile.interests:
        interests.add_row(it.label, it.granularity, f"{it.weight:.2f}", titles(it.evidence))
    dislikes = Table("dislike", "evidence", title="dislikes", expand=True)
    for it in profile.dislikes:
        dislikes.add_row(it.label, titles(it.evidence))
    cats = ", ".join(f"{c.category} {c.weight:.2f}" for c in profile.categories[:8])
    drift = ", ".join(f"{d.category} {d.delta:+.2f}" for d in profile.drift[:6])
    source = "model" if profile.provenance.llm_used else "data facts (fallback)"
    header = Text.assemble(
        (f"user {profile.user}", "bold"), f"  ·  {profile.n_items} items  ·  v{version}  ·  ",
        f"interests from {source}  ·  {profile.provenance.model}")
    body = Group(header, Text(profile.summary, style="italic"), interests, dislikes,
                 Text(f"categories: {cats}"), Text(f"drift (recent − long-term): {drift}"),
                 Text("explore next: " + ", ".join(profile.explore_next)))
    return Panel(body, title="interest profile")
