"""How the engine talks to the person watching. The CLI plugs in a rich version; tests use the quiet one.

A stage reports counted work with `with ctx.reporter.bar("validate on X", total) as advance: ... advance(1)`
and long uncounted work with `bar(description, None)`. On a terminal that is a live bar; in a log (stdout or
stderr not a terminal, as in CI) the same calls give plain lines, at most one every few seconds
(`ProgressLog`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass


class Reporter:
    def stage_start(self, name: str, detail: str = "") -> None: ...

    def stage_end(self, name: str, *, cached: bool, seconds: float, detail: str = "") -> None: ...

    def abort(self) -> None:
        """A step failed: stop any live display so the error prints cleanly."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def library_output(self) -> list[tuple[str, str]]:
        """(level, line) summaries of what third-party libraries printed while the running step worked, for
        a reporter that captures it (the CLI's): the engine puts them in the step's report."""
        return []

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        yield lambda n=1: None


class QuietReporter(Reporter):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def info(self, message: str) -> None:
        self.messages.append(message)

    def warn(self, message: str) -> None:
        self.messages.append(f"warning: {message}")


def duration(seconds: float) -> str:
    """45 s, 3m12s, 1h02m: short enough for a progress line."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


@dataclass
class _Task:
    description: str
    total: int | None
    start: float
    done: int = 0
    lines: int = 0  # progress lines printed about it


class ProgressLog:
    """Progress as plain lines for a log. `line(now)` returns a line when `interval` seconds have passed since
    the last one (or since the stage began), describing the innermost running bar: what it does, done/total,
    rate and time left when counted, elapsed time otherwise. A bar that printed progress also gets a closing
    line with its total time and rate. The clock is passed in, so this is tested without waiting."""

    def __init__(self, interval: float = 15.0) -> None:
        self.interval = interval
        self.stage: str | None = None
        self.stage_start = 0.0
        self.tasks: list[_Task] = []
        self.last = 0.0

    def begin_stage(self, name: str, now: float) -> None:
        self.stage, self.stage_start, self.last = name, now, now

    def end_stage(self) -> None:
        self.stage, self.tasks = None, []

    def push(self, description: str, total: int | None, now: float) -> _Task:
        if not self.tasks and self.stage is None:
            self.last = now  # a bar outside any stage (tune, bench) starts its own clock
        task = _Task(description, total, now)
        self.tasks.append(task)
        return task

    def pop(self, task: _Task, now: float) -> str | None:
        """Remove the bar; the closing line if it printed progress."""
        if task in self.tasks:
            self.tasks.remove(task)
        if not task.lines:
            return None
        took = now - task.start
        counted = f"{task.done}/{task.total}" if task.total else f"{task.done}" if task.done else ""
        rate = f", {task.done / took:.2f}/s" if task.done and took > 0 else ""
        self.last = now
        counted += " " if counted else ""
        return self._prefix() + f"{task.description}: {counted}done in {duration(took)}{rate}"

    def _prefix(self) -> str:
        return f"  {self.stage:<10} " if self.stage else "  "

    def line(self, now: float) -> str | None:
        if self.interval <= 0 or now - self.last < self.interval:
            return None
        if not self.tasks and self.stage is None:
            return None
        self.last = now
        if not self.tasks:
            return self._prefix() + f"running, {duration(now - self.stage_start)}"
        task = self.tasks[-1]
        task.lines += 1
        took = now - task.start
        text = f"{task.description}: "
        if task.total:
            pct = 100.0 * task.done / task.total
            text += f"{task.done}/{task.total} ({pct:.0f}%)"
            if task.done and took > 0:
                rate = task.done / took
                left = (task.total - task.done) / rate
                text += f", {rate:.2f}/s, {duration(took)} so far, about {duration(left)} left"
            else:
                text += f", {duration(took)} so far"
        else:
            text += f"{task.done} done, " if task.done else ""
            text += f"running, {duration(took)}"
        return self._prefix() + text


def monotonic() -> float:
    return time.monotonic()
