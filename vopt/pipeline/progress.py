"""How the engine talks to the person watching. The CLI plugs in a rich version; tests use the quiet one."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Reporter:
    def stage_start(self, name: str, detail: str = "") -> None: ...

    def stage_end(self, name: str, *, cached: bool, seconds: float, detail: str = "") -> None: ...

    def abort(self) -> None:
        """A step failed: stop any live display so the error prints cleanly."""

    def info(self, message: str) -> None: ...

    def warn(self, message: str) -> None: ...

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
