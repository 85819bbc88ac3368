"""`vopt build --timings`: where the time went, per step and inside a step (its progress bars and the gaps
between them), measured by the reporter the engine already talks to."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from vopt.cli.output import RichReporter


@dataclass
class StepTime:
    name: str
    start: float
    seconds: float = 0.0
    cached: bool = False
    phases: list[tuple[str, float, float]] = field(default_factory=list)  # (description, start, end)


class TimingReporter(RichReporter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.steps: list[StepTime] = []

    def stage_start(self, name: str, detail: str = "") -> None:
        self.steps.append(StepTime(name, time.perf_counter()))
        super().stage_start(name, detail)

    def stage_end(self, name: str, *, cached: bool, seconds: float, detail: str = "") -> None:
        if self.steps and self.steps[-1].name == name:
            self.steps[-1].seconds, self.steps[-1].cached = seconds, cached
        super().stage_end(name, cached=cached, seconds=seconds, detail=detail)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        t0 = time.perf_counter()
        try:
            with super().bar(description, total) as advance:
                yield advance
        finally:
            if self.steps:
                self.steps[-1].phases.append((description, t0, time.perf_counter()))

    def lines(self) -> list[str]:
        """One line per step, then its phases; time between phases is shown as 'other' (setup, checks,
        I/O)."""
        total = sum(s.seconds for s in self.steps if not s.cached) or 1e-9
        out = [f"{'step':<34} {'seconds':>8} {'share':>6}"]
        for s in self.steps:
            if s.cached:
                out.append(f"{s.name:<34} {'cached':>8}")
                continue
            out.append(f"{s.name:<34} {s.seconds:8.2f} {100 * s.seconds / total:5.1f}%")
            cursor, after = s.start, "start"
            for desc, a, b in s.phases:
                if a - cursor >= 0.05:
                    out.append(f"  {'other (after ' + after + ')':<32} {a - cursor:8.2f}")
                out.append(f"  {desc:<32} {b - a:8.2f}")  # whole, even past the column
                cursor, after = b, desc.split(" (")[0].split(":")[0][:18]
            end = s.start + s.seconds
            if s.phases and end - cursor >= 0.05:
                out.append(f"  {'other (after ' + after + ')':<32} {end - cursor:8.2f}")
        return out
