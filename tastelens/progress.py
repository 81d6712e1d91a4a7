"""Progress that reaches logs too: a rich bar on a terminal, plain lines everywhere else.

rich redraws its live display only on an interactive terminal. When a command's output is a
pipe or a file (``make run 2>&1 | tee run.log``, a CI log) a bar shows nothing until it stops,
and a long job looks hung for minutes. :class:`LoggedProgress` is a
:class:`rich.progress.Progress` that, on a console that is not interactive, also prints one
plain line per task::

    embedding: 4,096/9,742 (42%), 1m 05s elapsed, 63.0/s, ~1m 30s left

A task gets a line when it starts or changes its description (a new phase), when it finishes,
when it is updated and its last line is ``interval`` seconds old, and — from a heartbeat
thread — when nothing has updated it for ``interval`` seconds (a model fit or a batch that
reports nothing while it runs), so a log shows a line at least every ``interval`` seconds
(plus a second) while any task is running. The heartbeat stays quiet while any progress
printed a line within ``interval`` (a SASRec fit inside an evaluation prints its epochs; the
evaluation's "fitting" task need not say so too). When the display stops, each task whose
last state was not printed gets a final line. On a terminal it is the rich bar and nothing more::

    with LoggedProgress(TextColumn("{task.description}"), BarColumn(), console=console) as bar:
        task = bar.add_task("embedding", total=len(texts))
        bar.advance(task, 64)
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.errors import MarkupError
from rich.progress import Progress, Task, TaskID
from rich.text import Text

DEFAULT_INTERVAL_S = 15.0
"""Seconds between two plain lines of one task (half the 30 s a reader of a log should wait
at most for a sign of life)."""

_last_line = [0.0]  # time.monotonic() of the last line any LoggedProgress printed


def duration(seconds: float) -> str:
    """``42s``, ``3m 05s``, ``1h 02m``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _plain(markup: str) -> str:
    try:
        return Text.from_markup(markup).plain
    except MarkupError:  # a description with brackets that are not markup
        return markup


def progress_line(task: Task) -> str:
    """One plain line for ``task``: description, done/total, elapsed time, the task's own
    text fields (e.g. a loss, or a rate the caller computes) — else the rate — and the time
    left."""
    done = task.completed
    parts = [f"{_plain(task.description)}: "
             + (f"{done:,.0f}/{task.total:,.0f} ({100 * done / task.total:.0f}%)"
                if task.total else f"{done:,.0f}")]
    elapsed = task.finished_time if task.finished else task.elapsed
    if elapsed is not None:
        parts.append(f"{duration(elapsed)} elapsed")
    fields = "  ".join(_plain(str(v)) for v in task.fields.values() if str(v).strip())
    if fields:
        parts.append(fields)
    else:
        speed = task.finished_speed or task.speed
        if speed is None and elapsed and done:
            speed = done / elapsed
        if speed:
            parts.append(f"{speed:,.1f}/s")
    if not task.finished and task.time_remaining is not None:
        parts.append(f"~{duration(task.time_remaining)} left")
    return ", ".join(parts)


class LoggedProgress(Progress):
    """A rich ``Progress`` that also prints plain progress lines on a console that is not
    interactive (see the module docstring). ``interval``: seconds between two lines of one
    task; ``heartbeat``: also print lines for tasks nothing has updated lately (a thread,
    started with the display). Everything else is ``rich.progress.Progress``'s."""

    def __init__(self, *columns: Any, interval: float = DEFAULT_INTERVAL_S,
                 heartbeat: bool = True, **kwargs: Any) -> None:
        super().__init__(*columns, **kwargs)
        self.interval = interval
        self.heartbeat = heartbeat
        self._printed: dict[TaskID, tuple[float, float, str]] = {}  # time, completed, desc
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None

    @property
    def prints_lines(self) -> bool:
        """Whether this progress prints plain lines (enabled, and not on a live terminal)."""
        return not self.disable and not self.console.is_interactive

    # -- rich's API, with a line when one is due ------------------------------------------
    def add_task(self, description: str, *args: Any, **kwargs: Any) -> TaskID:
        task_id = super().add_task(description, *args, **kwargs)
        self.log_due(task_id)
        return task_id

    def update(self, task_id: TaskID, **kwargs: Any) -> None:  # type: ignore[override]
        super().update(task_id, **kwargs)
        self.log_due(task_id)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        super().advance(task_id, advance)
        self.log_due(task_id)

    def start(self) -> None:
        super().start()
        if self.prints_lines and self.heartbeat and self._beat is None:
            self._beat_stop.clear()
            self._beat = threading.Thread(target=self._beat_loop, name="progress-lines",
                                          daemon=True)
            self._beat.start()

    def stop(self) -> None:
        if self._beat is not None:
            self._beat_stop.set()
            self._beat.join()
            self._beat = None
        if self.prints_lines:
            for task_id in list(self._tasks):
                self.log_due(task_id, final=True)
        super().stop()

    # -- the lines ----------------------------------------------------------------------
    def log_due(self, task_id: TaskID, *, final: bool = False) -> bool:
        """Print ``task_id``'s line if one is due (see the module docstring); ``final``: if
        its state changed since its last line. Returns whether it printed."""
        if not self.prints_lines:
            return False
        with self._lock:
            task = self._tasks.get(task_id)
            if task is None or not task.visible:
                return False
            now = self.get_time()
            last = self._printed.get(task_id)
            state = (task.completed, task.description)
            changed = last is None or (last[1], last[2]) != state
            if final:
                due = changed
            elif last is None or last[2] != task.description:
                due = True  # a new task, or a new phase of one
            elif task.finished:
                due = changed  # once, when it finishes
            else:
                due = now - last[0] >= self.interval
            if not due:
                return False
            self._printed[task_id] = (now, *state)
            line = progress_line(task)
        self.console.print(line, markup=False, highlight=False, soft_wrap=True)
        _last_line[0] = time.monotonic()
        return True

    def beat(self) -> int:
        """Print the due line of every unfinished task (what the heartbeat thread calls);
        returns how many lines it printed."""
        with self._lock:
            running = [task.id for task in self._tasks.values() if not task.finished]
        return sum(self.log_due(task_id) for task_id in running)

    def beat_if_quiet(self) -> int:
        """:meth:`beat`, unless any progress printed a line within ``interval`` (wall
        time): a sign of life is already in the log."""
        if time.monotonic() - _last_line[0] < self.interval:
            return 0
        return self.beat()

    def _beat_loop(self) -> None:
        # Wake often enough that a due line is at most a second late.
        while not self._beat_stop.wait(min(1.0, self.interval / 4)):
            self.beat_if_quiet()
