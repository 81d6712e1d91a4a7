"""`tastelens eval ...` commands."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from tastelens.cli.common import DataOption, SideInfoOption, console, settings_from

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="Eval config TOML, e.g. eval/configs/ml-latest-small.toml.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output folder (default runs/eval/<config-stem>-<timestamp>).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    users: Annotated[Optional[int], typer.Option(
        "--users", min=1,
        help="Evaluate a random sample of N users (seeded by the config).")] = None,
    system: Annotated[Optional[list[str]], typer.Option(
        "--system", help="Only the configured system with this name (repeatable).")] = None,
) -> None:
    """Fit and score the configured systems; write metrics.json, report.md, a plot,
    per_user.parquet and run.json into the output folder."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    from tastelens.eval.config import load_eval_config
    from tastelens.eval.harness import default_out_dir, run_eval
    from tastelens.eval.report import ci_rows, diagnostics_rows, rich_table
    from tastelens.progress import LoggedProgress

    settings = settings_from(ctx)
    cfg = load_eval_config(config).with_overrides(data=data, users=users, systems=system,
                                                  side_info=side_info)
    out_dir = out or default_out_dir(cfg)

    # Off a terminal (a log, `make run | cat`) it prints plain lines, at least one every
    # 15 s while a system fits or scores.
    with LoggedProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        console=console, transient=False) as bar:
        tasks: dict[str, int] = {}
        started: dict[str, float] = {}

        def progress(label: str, done: int, total: int) -> None:
            # "<name>: fitting" announces a fit; scoring updates use the bare name.
            name, _, phase = label.partition(": ")
            if name not in tasks:
                tasks[name] = bar.add_task(f"{name} (fitting)" if phase else name,
                                           total=total, rate="")
            if phase:
                bar.update(tasks[name], description=f"{name} (fitting)", rate="")
                return
            if done == 0:
                started[name] = time.perf_counter()
            elapsed = time.perf_counter() - started.get(name, time.perf_counter())
            rate = f"{done / elapsed:,.0f} cases/s" if elapsed > 0 and done else ""
            bar.update(tasks[name], completed=done, description=name, rate=rate)

        result = run_eval(cfg, settings, out_dir=out_dir, progress=progress)

    console.print(rich_table(result.metrics))
    header, rows = diagnostics_rows(result.metrics)
    if rows:
        from rich.table import Table

        table = Table(*header, title="Diagnostics (reported by the LLM systems)")
        for row in rows:
            table.add_row(*row)
        console.print(table)
    header, rows = ci_rows(result.metrics)
    if rows:
        ref = result.metrics["protocol"]["reference"]
        console.print(f"Difference vs [bold]{ref}[/] (paired bootstrap, * = CI excludes 0):")
        for row in rows:
            console.print("  " + row[0] + ": " + "; ".join(
                f"{h} {c}" for h, c in zip(header[1:], row[1:])))
    for note in result.notes:
        console.print(note)
    console.print(f"Wrote {result.out_dir}/ (report.md, metrics.json, metrics.png, "
                  "per_user.parquet, run.json)")


@app.command("profile-report")
def profile_report(
    ctx: typer.Context,
    config: Annotated[Path, typer.Option(
        "--config", "-c", help="Eval config whose llm-pipeline systems name the profile "
                               "sources, e.g. eval/configs/profile-report.toml.")],
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output folder (default runs/eval/<config-stem>-<timestamp>).")] = None,
    data: DataOption = None,
    side_info: SideInfoOption = None,
    users: Annotated[Optional[int], typer.Option(
        "--users", min=1, help="A random sample of N users (seeded by the config).")] = None,
    system: Annotated[Optional[list[str]], typer.Option(
        "--system", help="Only the configured system with this name (repeatable).")] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="'validation' or 'test' (default: the config's evaluate_on).")] = None,
    retrieval: Annotated[bool, typer.Option(
        "--retrieval/--no-retrieval", help="Also run the systems (profile-only retrieval, "
                                           "part (b)).")] = True,
) -> None:
    """The profile report of each profile source: hit rate of the held-out item against a
    popularity-matched base (lift), specificity, grounding, and profile-only retrieval."""
    from tastelens.errors import ConfigError
    from tastelens.eval.config import load_eval_config
    from tastelens.eval.harness import default_out_dir
    from tastelens.eval.profile_run import run_profile_report

    if split not in (None, "validation", "test"):
        raise ConfigError(f"--split {split!r}: expected 'validation' or 'test'")
    cfg = load_eval_config(config).with_overrides(data=data, users=users, systems=system,
                                                  side_info=side_info, evaluate_on=split)
    out_dir = out or default_out_dir(cfg)
    report = run_profile_report(cfg, settings_from(ctx), out_dir, retrieval=retrieval,
                                progress=lambda msg: console.print(msg, highlight=False))
    from tastelens.eval.profile_run import report_markdown

    console.print(report_markdown(report), highlight=False)
    console.print(f"Wrote {out_dir}/profile_report.json and .md", highlight=False)


@app.command("subset")
def subset(
    run_dir: Annotated[Path, typer.Argument(help="Folder of a finished full-protocol run.")],
    by: Annotated[str, typer.Option(
        "--by", help="The system whose first --top items define the subset (the pipeline's "
                     "retrieval order).")] = "retrieval",
    top: Annotated[int, typer.Option("--top", min=1, help="Candidates the LLM is shown.")] = 20,
    k: Annotated[int, typer.Option("--k", min=1, help="NDCG cut-off (one of the run's).")] = 10,
    pair: Annotated[Optional[list[str]], typer.Option(
        "--pair", help="'A:B': paired bootstrap interval of A - B (repeatable).")] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Also write the report as JSON here (and Markdown beside it).")] = None,
) -> None:
    """The subset protocol of LLM re-ranking papers: every system's NDCG@K and MRR on the
    users whose test item is among the --by system's first --top items."""
    from tastelens.errors import ConfigError
    from tastelens.eval.subset import read_per_user, subset_markdown, subset_report
    from tastelens.fsutil import atomic_write_json, atomic_write_text

    pairs = []
    for text in pair or []:
        a, sep, b = text.partition(":")
        if not sep or not a or not b:
            raise ConfigError(f"--pair {text!r}: expected 'SYSTEM:REFERENCE'")
        pairs.append((a, b))
    report = subset_report(read_per_user(run_dir), by=by, top=top, k=k, pairs=pairs)
    markdown = subset_markdown(report)
    console.print(markdown)
    if out is not None:
        atomic_write_json(out, report)
        atomic_write_text(out.with_suffix(".md"), markdown)


@app.command("systems")
def systems() -> None:
    """List the registered system types and their config fields."""
    from rich.table import Table

    from tastelens.eval.baselines.base import registered

    table = Table("Type", "Needs", "Params (default)")
    for name, cls in sorted(registered().items()):
        # A nested config (a default factory) shows as its class: its own fields are many.
        params = ", ".join(
            f"{field}={info.default!r}" if info.default_factory is None
            else f"{field}={getattr(info.annotation, '__name__', '…')}(…)"
            for field, info in cls.Config.model_fields.items())
        table.add_row(name, ", ".join(cls.needs) or "–", params or "–")
    console.print(table)


def _default_chat_config() -> Path:
    from tastelens import eval as eval_package

    return Path(eval_package.__file__).resolve().parent / "configs" / "chat-redial.toml"


class _Lines:
    """Progress as plain lines (no terminal): one per stage start and end, one every
    ``every_s`` seconds while cases are scored, and — from a background thread — a "still
    at it" line whenever ``quiet_s`` seconds pass without one (a long fit)."""

    def __init__(self, every_s: float = 15.0, quiet_s: float = 30.0) -> None:
        self.every_s = every_s
        self.quiet_s = quiet_s
        self.started: dict[str, float] = {}
        self.stage = "starting"
        self.last = time.perf_counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _Lines:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _say(self, text: str) -> None:
        with self._lock:
            console.print(text, highlight=False)
            self.last = time.perf_counter()

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            if time.perf_counter() - self.last >= self.quiet_s:
                self._say(f"{self.stage}: still running")

    def __call__(self, label: str, done: int, total: int) -> None:
        now = time.perf_counter()
        name, _, phase = label.partition(": ")
        self.stage = label
        if phase or name not in self.started:
            self.started.setdefault(name, now)
            self._say(f"{name}: {phase or 'started'} ({total} cases)")
            return
        if done < total and now - self.last < self.every_s:
            return
        elapsed = now - self.started[name]
        rate = f", {done / elapsed:.2f} cases/s" if elapsed > 0 and done else ""
        self._say(f"{name}: {done}/{total} cases{rate}, {elapsed:.0f} s")


@app.command("chat")
def chat(
    ctx: typer.Context,
    config: Annotated[Optional[Path], typer.Option(
        "--config", "-c", help="Chat eval config TOML (default: eval/configs/chat-redial.toml)."
    )] = None,
    dialogues: Annotated[Optional[Path], typer.Option(
        "--dialogues", help="Dialogues file (ReDial JSON Lines or the generic JSONL; see "
                            "docs/chat-evaluation.md).")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", help="'redial', 'jsonl' or 'auto'.")] = None,
    protocol: Annotated[Optional[str], typer.Option(
        "--protocol", help="'first' (the first suggestion of each conversation) or 'every'."
    )] = None,
    split: Annotated[Optional[str], typer.Option(
        "--split", help="'tune' (~70 % of conversations), 'check' (the other ~30 %) or 'all'."
    )] = None,
    limit: Annotated[Optional[int], typer.Option(
        "--limit", min=1, help="Only the first N cases of the split.")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Bootstrap seed.")] = None,
    llm: Annotated[Optional[bool], typer.Option(
        "--llm/--no-llm", help="In process: read messages with the LLM too (default: the "
                               "config's chat.llm, off).")] = None,
    api: Annotated[Optional[str], typer.Option(
        "--api", help="Replay over HTTP against a running `tastelens api` at this URL.")
    ] = None,
    api_key: Annotated[Optional[str], typer.Option(
        "--api-key", help="Its API key (default: settings api.api_key).")] = None,
    baseline: Annotated[Optional[list[str]], typer.Option(
        "--baseline", help="Only the configured baseline with this name (repeatable).")
    ] = None,
    out: Annotated[Optional[Path], typer.Option(
        "--out", help="Output folder (default runs/eval/chat-<protocol>-<timestamp>).")] = None,
    data: DataOption = None,
) -> None:
    """Replay human dialogues through the chat and score its lists against what the human
    recommender suggested, beside seeded baselines; write metrics.json, report.md,
    per_case.parquet and run.json."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from tastelens.errors import ConfigError
    from tastelens.eval.chat.config import load_chat_eval_config
    from tastelens.eval.chat.harness import default_out_dir, run_chat_eval
    from tastelens.eval.chat.report import difference_rows, overall_rows

    for name, value, allowed in (("--format", fmt, ("redial", "jsonl", "auto")),
                                 ("--protocol", protocol, ("first", "every")),
                                 ("--split", split, ("tune", "check", "all"))):
        if value is not None and value not in allowed:
            raise ConfigError(f"{name} {value!r}: expected one of {', '.join(allowed)}")
    if api is not None and llm:
        raise ConfigError("--llm is for the in-process chat; over --api the server's settings "
                          "decide")
    settings = settings_from(ctx)
    cfg = load_chat_eval_config(config or _default_chat_config()).with_overrides(
        dialogues=dialogues, format=fmt, protocol=protocol, split=split, limit=limit, seed=seed,
        llm=llm, api=api, data=data, baselines=baseline)
    key = api_key or (settings.api.api_key.get_secret_value() if settings.api.api_key else None)
    out_dir = out or default_out_dir(cfg)

    if console.is_terminal:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                      console=console) as bar:
            tasks: dict[str, int] = {}

            def progress(label: str, done: int, total: int) -> None:
                name, _, phase = label.partition(": ")
                if name not in tasks:
                    tasks[name] = bar.add_task(name, total=total, rate="")
                task = bar.tasks[tasks[name]]
                rate = (f"{done / task.elapsed:.2f} cases/s" if task.elapsed and done
                        and not phase else "")
                bar.update(tasks[name], completed=done, rate=rate,
                           description=f"{name} ({phase})" if phase else name)

            result = run_chat_eval(cfg, settings, out_dir=out_dir, api_key=key,
                                   progress=progress)
    else:
        with _Lines() as lines:
            result = run_chat_eval(cfg, settings, out_dir=out_dir, api_key=key, progress=lines)

    from rich.table import Table

    header, rows = overall_rows(result.metrics)
    table = Table(*header, title=f"eval chat · protocol {cfg.protocol} · "
                                 f"{result.metrics['protocol']['n_cases']} cases")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    header, rows = difference_rows(result.metrics)
    for row in rows:
        console.print(f"  {row[0]}: Recall@10 {row[1]}; MRR@10 {row[2]}")
    lat = result.metrics["latency"]["seeker_turns"]
    if lat.get("n"):
        console.print(f"turn latency p50 {lat['p50_s']:.3f} s, p95 {lat['p95_s']:.3f} s "
                      f"({lat['n']} turns)")
    for note in result.notes:
        console.print(note)
    console.print(f"Wrote {result.out_dir}/ (report.md, metrics.json, per_case.parquet, "
                  "run.json)")
