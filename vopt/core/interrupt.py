"""SIGINT and SIGTERM end a build with 130 / 143 and leave nothing partial.

The handler records the signal and raises once; the engine also checks the record between steps and after
each stage returns, so an interrupt that library code swallowed (an `except` around an import, say) still
ends the build. Later signals, while the build cleans up, are only recorded, so cleanup is not cut short."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_pending: int | None = None
_installed = False


class Interrupted(KeyboardInterrupt):
    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum  # 130 for SIGINT, 143 for SIGTERM, as a shell reports them


def _handler(signum: int, frame: Any) -> None:
    global _pending
    first = _pending is None
    _pending = signum
    if first:
        raise Interrupted(signum)


@contextlib.contextmanager
def handle_signals() -> Iterator[None]:
    """Install the handlers for the duration of a command (main thread only), then restore the old ones."""
    global _pending, _installed
    import threading

    if threading.current_thread() is not threading.main_thread() or _installed:
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    _pending, _installed = None, True
    for s in old:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _pending, _installed = None, False


def check() -> None:
    """Raise if a signal arrived, even if the exception it raised was swallowed on the way."""
    if _pending is not None:
        raise Interrupted(_pending)


def test_pause(point: str, workdir: Path) -> None:
    """Tests only: VOPT_TEST_PAUSE_AT=<point>:<marker file>[:swallow] makes the build stop at <point> (a
    stage name, after the stage wrote its outputs and before they are committed, or `output` for the build
    directory), with a partial file in the work directory, create the marker (`{pid}` in its name is this
    process's pid, for builds run side by side) and wait for a signal. With
    `swallow`, the wait swallows the interrupt, as library code sometimes does. Not for use outside tests."""
    spec = os.environ.get("VOPT_TEST_PAUSE_AT")
    if not spec:
        return
    where, _, marker = spec.partition(":")
    swallow = marker.endswith(":swallow")
    marker = marker.removesuffix(":swallow").replace("{pid}", str(os.getpid()))  # one marker per process
    if where != point or not marker:
        return
    (workdir / "partial.tmp").write_bytes(b"\0" * 4096)
    Path(marker).write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            time.sleep(0.01)
    except BaseException:
        if not swallow:
            raise
    (workdir / "partial.tmp").unlink(missing_ok=True)
