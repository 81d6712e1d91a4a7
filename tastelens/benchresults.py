"""Results files: what a benchmark measured, as Markdown in ``bench/results/<topic>.md``.

A topic's file holds the measurements people refer to, each with the command, the commit
and the machine that produced it. A benchmark run with ``--results PATH`` writes its own
block into that file — the command, commit, machine, date and its table — between two
markers named for the benchmark, replacing the block of its previous run and leaving the
rest of the file (earlier runs, the text that explains them) as it is::

    <!-- results: profile_throughput -->
    ### Latest run of `profile_throughput` (2026-01-05)
    - command: `python bench/profile_throughput.py --users 64 ...`
    - commit: `2977688...`
    - machine: 2 CPU cores (...), 23 GiB, no GPU, load average 2.1/2.0/1.8
    | ... the table ... |
    <!-- /results: profile_throughput -->

    write_results(Path("bench/results/profile-job.md"), "profile_throughput",
                  title="The profile job", table=markdown_table(rows))
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tastelens.fsutil import atomic_write_text
from tastelens.runinfo import git_commit


def machine() -> str:
    """The machine in words: CPU model, cores this process may use, memory, GPU or not,
    and the load average (on a shared machine it says how far wall times are upper
    bounds)."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    parts = [f"{cores} CPU cores ({model})"]
    try:
        parts.append(f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB")
    except (ValueError, OSError, AttributeError):
        pass
    parts.append("an NVIDIA GPU" if shutil.which("nvidia-smi") else "no GPU")
    if hasattr(os, "getloadavg"):
        parts.append("load average {:.1f}/{:.1f}/{:.1f}".format(*os.getloadavg()))
    return ", ".join(parts)


def command_line(argv: Sequence[str] | None = None,
                 environ: Mapping[str, str] | None = None) -> str:
    """How this process was started, as one shell line, with the ``TASTELENS_*`` settings
    it ran under (secrets shown as ``...``): ``TASTELENS_LLM__PORT=8100 python bench/x.py``."""
    argv = list(sys.argv if argv is None else argv)
    environ = os.environ if environ is None else environ
    settings = [f"{key}={'...' if re.search('KEY|TOKEN|SECRET|PASSWORD', key) else value}"
                for key, value in sorted(environ.items()) if key.startswith("TASTELENS_")]
    return " ".join([*(shlex.quote(s) for s in settings), shlex.join(["python", *argv])])


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    """A Markdown table of ``rows`` (columns: every key, in order of first appearance);
    columns of numbers are right-aligned, floats shown with 4 significant digits."""
    if not rows:
        return "(no rows)"
    columns = list(dict.fromkeys(key for row in rows for key in row))
    numeric = [all(_is_number(r.get(c)) for r in rows) for c in columns]
    lines = ["| " + " | ".join(columns) + " |",
             "|" + "|".join("---:" if n else "---" for n in numeric) + "|"]
    lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


def figures_table(figures: Mapping[str, Any]) -> str:
    """A two-column table (figure, value) of a possibly nested dict of figures; nested keys
    are joined with '.'."""
    rows: list[dict[str, Any]] = []

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, Mapping) and value:
            for key, sub in value.items():
                walk(f"{prefix}.{key}" if prefix else str(key), sub)
        else:
            rows.append({"figure": prefix, "value": value})

    walk("", figures)
    return "\n".join(["| figure | value |", "|---|---:|"]
                     + [f"| {r['figure']} | {_cell(r['value'])} |" for r in rows])


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if _is_number(value):
        return f"{value:,}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def results_block(name: str, *, table: str, notes: str = "", command: str | None = None,
                  commit: str | None = None, machine_text: str | None = None,
                  when: datetime | None = None) -> str:
    """The block ``write_results`` puts in a results file (markers included)."""
    when = when or datetime.now(timezone.utc)
    commit = commit if commit is not None else (git_commit() or "unknown")
    lines = [f"<!-- results: {name} -->",
             f"### Latest run of `{name}` ({when:%Y-%m-%d})", "",
             f"- command: `{command or command_line()}`",
             f"- commit: `{commit}`",
             f"- machine: {machine_text or machine()}", "", table.strip()]
    if notes.strip():
        lines += ["", notes.strip()]
    lines.append(f"<!-- /results: {name} -->")
    return "\n".join(lines) + "\n"


def write_results(path: Path, name: str, *, title: str, table: str, notes: str = "",
                  **block: Any) -> None:
    """Put this run's block into ``path`` (see the module docstring): replace the block
    named ``name`` if the file has one, else append it; a new file starts with ``# title``.
    The file is replaced in one rename."""
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
        raise ValueError(f"results block name {name!r}: letters, digits, '_', '.', '-' only")
    new = results_block(name, table=table, notes=notes, **block)
    text = path.read_text(encoding="utf-8") if path.exists() else f"# {title}\n"
    pattern = re.compile(rf"<!-- results: {re.escape(name)} -->\n.*?"
                         rf"<!-- /results: {re.escape(name)} -->\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _m: new, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + new
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text)


def add_results_option(parser: Any, example: str) -> None:
    """The ``--results FILE`` option every benchmark takes (``parser``: argparse)."""
    parser.add_argument(
        "--results", type=Path, default=None, metavar="FILE",
        help=f"Also write this run's table, with the command, commit and machine, into the "
             f"Markdown results file FILE (e.g. {example}), replacing this benchmark's "
             f"previous block there.")
