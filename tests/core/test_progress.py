"""LoggedProgress: plain progress lines when the console is not a terminal."""

from __future__ import annotations

import io
import re
import time

import pytest
from rich.console import Console
from rich.progress import BarColumn, TextColumn

import tastelens.progress as progress_module
from tastelens.progress import LoggedProgress, duration, progress_line


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _progress(*, terminal: bool = False, heartbeat: bool = False, interval: float = 15.0,
              disable: bool = False) -> tuple[LoggedProgress, io.StringIO, Clock]:
    out = io.StringIO()
    console = Console(file=out, force_terminal=terminal, width=100)
    clock = Clock()
    bar = LoggedProgress(TextColumn("{task.description}"), BarColumn(), console=console,
                         get_time=clock, interval=interval, heartbeat=heartbeat,
                         auto_refresh=False, disable=disable)
    return bar, out, clock


def _lines(out: io.StringIO) -> list[str]:
    return [line for line in out.getvalue().splitlines() if line.strip()]


def test_lines_at_most_every_interval_and_at_the_end() -> None:
    bar, out, clock = _progress()
    with bar:
        task = bar.add_task("embedding", total=100)
        assert _lines(out) == ["embedding: 0/100 (0%), 0s elapsed"]
        for _ in range(9):  # 9 updates, 4 s apart: lines at 16 s and 32 s only
            clock.now += 4
            bar.advance(task, 10)
        clock.now += 4
        bar.advance(task, 10)  # finished: always a line
        lines = _lines(out)
    assert lines[1].startswith("embedding: 40/100 (40%), 16s elapsed, 2.5/s")
    assert lines[2].startswith("embedding: 80/100 (80%), 32s elapsed")
    assert lines[3] == "embedding: 100/100 (100%), 40s elapsed, 2.5/s"
    # rich's own final render of the bar follows; no plain line repeats the finished one
    assert [line for line in _lines(out) if line.startswith("embedding:")] == lines[:4]


def test_fields_replace_the_rate_and_markup_is_plain() -> None:
    bar, out, clock = _progress()
    with bar:
        task = bar.add_task("[bold]sasrec epochs", total=200, info="")
        clock.now += 20
        bar.update(task, completed=3, info="loss 3.120  12 items/s")
        clock.now += 20
        bar.update(task, completed=6, info="loss 3.050  12 items/s")
    lines = _lines(out)
    assert lines[1] == "sasrec epochs: 3/200 (2%), 20s elapsed, loss 3.120  12 items/s"
    assert re.fullmatch(r"sasrec epochs: 6/200 \(3%\), 40s elapsed, loss 3.050  12 items/s, "
                        r"~\d+m \d\ds left", lines[2])


def test_a_new_description_is_a_new_phase() -> None:
    bar, out, clock = _progress()
    with bar:
        task = bar.add_task("sasrec (fitting)", total=610)
        clock.now += 1
        bar.update(task, description="sasrec", completed=0)
    assert [line.split(":")[0] for line in _lines(out)[:2]] == ["sasrec (fitting)", "sasrec"]


def test_heartbeat_prints_for_a_task_nothing_updates() -> None:
    bar, out, clock = _progress()
    with bar:
        bar.add_task("learned (fitting)", total=610)
        clock.now += 10
        assert bar.beat() == 0  # not due yet
        clock.now += 6
        assert bar.beat() == 1
        assert bar.beat() == 0
        clock.now += 15
        assert bar.beat() == 1
    assert [line.split(", ")[1] for line in _lines(out)[:3]] == [
        "0s elapsed", "16s elapsed", "31s elapsed"]


def test_heartbeat_thread_runs_with_the_display() -> None:
    out = io.StringIO()
    bar = LoggedProgress(TextColumn("{task.description}"), console=Console(file=out),
                         interval=0.05, auto_refresh=False)
    with bar:
        bar.add_task("fit", total=None)
        time.sleep(0.5)
    assert len([line for line in _lines(out) if line.startswith("fit: 0,")]) >= 3


def test_final_line_when_stopped_unfinished() -> None:
    bar, out, clock = _progress()
    with bar:
        task = bar.add_task("sasrec epochs", total=200)
        clock.now += 2
        bar.update(task, completed=21)  # early stopping: never reaches 200
    plain = [line for line in _lines(out) if line.startswith("sasrec epochs:")]
    assert plain[-1].startswith("sasrec epochs: 21/200 (10%), 2s elapsed")


@pytest.mark.parametrize("terminal,disable", [(True, False), (False, True)])
def test_no_lines_on_a_terminal_or_when_disabled(terminal: bool, disable: bool) -> None:
    bar, out, clock = _progress(terminal=terminal, disable=disable)
    with bar:
        task = bar.add_task("embedding", total=10)
        clock.now += 60
        bar.advance(task, 5)
        assert bar.beat() == 0
    assert "embedding:" not in out.getvalue()


def test_duration_and_line_without_total() -> None:
    assert [duration(s) for s in (0, 42.4, 185, 3720)] == ["0s", "42s", "3m 05s", "1h 02m"]
    bar, _, clock = _progress()
    task = bar.add_task("profiles", total=None)
    clock.now += 4
    bar.advance(task, 8)
    assert progress_line(bar.tasks[0]) == "profiles: 8, 4s elapsed, 2.0/s"


def test_heartbeat_is_quiet_while_another_progress_prints() -> None:
    bar, out, clock = _progress()
    other, _, _ = _progress()
    with bar, other:
        bar.add_task("sasrec (fitting)", total=610)
        task = other.add_task("sasrec epochs", total=40)  # a line: the log just had one
        clock.now += 20  # the fitting task's heartbeat is due on its own clock
        assert bar.beat_if_quiet() == 0
        progress_module._last_line[0] -= bar.interval  # nothing printed for 15 s
        assert bar.beat_if_quiet() == 1
        other.advance(task)
    assert [line.split(",")[0] for line in _lines(out)
            if line.startswith("sasrec (fitting):")] == [
        "sasrec (fitting): 0/610 (0%)"] * 2
