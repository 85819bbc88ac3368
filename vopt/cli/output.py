"""One object owns the terminal: human output on stderr (rich), machine output (JSON) on stdout."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console

from vopt.core.progress import Reporter
from vopt.errors import VoptError


def _console(**kwargs: Any) -> Console:
    """A console whose width follows COLUMNS (or the terminal) at each use: rich reads COLUMNS once, when the
    console is made, and a process that runs the CLI more than once (the tests, a notebook) would otherwise
    keep the width of the first run."""
    console = Console(**kwargs)
    console._width = console._height = None  # rich's size then reads COLUMNS, LINES and the terminal
    return console


# soft_wrap: rich never breaks a line (a path, a recipe name) itself; a terminal wraps it, a CI log keeps it.
err = _console(stderr=True, highlight=False, soft_wrap=True)
out = _console(highlight=False, soft_wrap=True)


_json_stream: Any = None


@contextlib.contextmanager
def stdout_for_json_only() -> Iterator[None]:
    """While a command runs, what libraries print (model loaders print 'Loaded pretrained weights ...') goes
    to stderr, so that `--json` leaves nothing but the JSON on stdout."""
    global _json_stream
    _json_stream = sys.stdout
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        _json_stream = None


def print_json(data: Any) -> None:
    from vopt.core.results import json_safe

    stream = _json_stream or sys.stdout
    stream.write(json.dumps(json_safe(data), indent=2, default=str) + "\n")
    stream.flush()


# Terminal escapes (ORT's coloured log text inside an exception, or a recipe value) and other control
# characters: an error message is plain text, on a terminal and in a CI log alike.
_ANSI = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def plain(text: str) -> str:
    """`text` without terminal escape sequences; other control characters shown as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", _ANSI.sub("", str(text)))


def print_error(exc: VoptError) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(plain(exc.message))}", highlight=False, soft_wrap=True)
    for line in exc.lines:
        err.print(f"  {plain(line)}", markup=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  hint: {plain(exc.hint)}", markup=False, soft_wrap=True)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """VoptError -> its lines and its exit code; anything else -> one line unless --debug / VOPT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("VOPT_DEBUG") == "1"
        if not debug:
            import warnings

            # Library warnings (tracer, deprecation) drown the stage lines; --debug shows them.
            warnings.simplefilter("ignore")
            os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except VoptError as exc:
            if debug:
                raise
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            err.print(
                "[yellow]interrupted[/]: nothing partial was kept; the next run resumes from finished steps"
            )
            raise typer.Exit(getattr(exc, "exit_code", 130)) from None  # 130 SIGINT, 143 SIGTERM
        except Exception as exc:
            if debug:
                raise
            from rich.markup import escape

            err.print(
                f"[bold red]error:[/] internal error: {type(exc).__name__}: {escape(plain(str(exc)))}",
                soft_wrap=True,
            )
            err.print(
                "  rerun with VOPT_DEBUG=1 (or --debug on build, plan and check) for the traceback",
                markup=False,
            )
            raise typer.Exit(1) from None

    return wrapper


def print_table(
    headers: list[str], rows: list[list[str]], *, console: Console | None = None, right: tuple[int, ...] = ()
) -> None:
    """Rows (cells are rich markup: escape identifiers) that are never cut: as columns when the table fits
    the console's width, else one record per line, `header: value | header: value`, which a narrow terminal
    or a CI log (80 columns unless COLUMNS says otherwise) keeps whole. `right`: column indexes to right-align
    (numbers)."""
    from rich.markup import escape
    from rich.table import Table

    console = console or out
    table = Table(box=None, header_style="bold")
    for i, h in enumerate(headers):
        table.add_column(escape(h), no_wrap=True, justify="right" if i in right else "left")
    for row in rows:
        table.add_row(*row)
    natural = console.measure(table, options=console.options.update_width(1_000_000)).maximum
    if not rows or natural <= console.width:
        console.print(table)
        return
    for row in rows:
        parts = [
            (f"[bold]{escape(h)}:[/] " if h else "") + (c if c.strip() else "-")
            for h, c in zip(headers, row, strict=True)
        ]
        console.print(" | ".join(parts), highlight=False, soft_wrap=True)


@contextlib.contextmanager
def captured(description: str, *, debug: bool = False) -> Iterator[list[str]]:
    """For a command that is not a build (`vopt profile`, `vopt verify`): what libraries print while it works
    is captured as in a build step, said as one line per source on stderr, and listed in the yielded list
    (for the command's JSON). In a log, plain progress lines say it is still running. `debug` lets it
    through."""
    reporter = RichReporter(debug=debug)
    lines: list[str] = []
    with reporter.bar(description, None):
        try:
            yield lines
        finally:
            lines += [text for _, text in reporter.library_output()]


class RichReporter(Reporter):
    """A live line per running stage (spinner, elapsed time, bars for counted work) on stderr, then one
    summary line per finished stage. When stderr is not a terminal (a CI log), plain progress lines instead,
    at most one every VOPT_PROGRESS_INTERVAL seconds (15 by default; VOPT_PROGRESS=0 turns them off,
    VOPT_PROGRESS=1 forces the live bars).

    While a stage (or a bar outside a stage) runs, what libraries print is captured (vopt.cli.capture) and
    comes back as one line per source when it ends; `debug` lets it through as it comes."""

    def __init__(self, console: Console = err, quiet: bool = False, debug: bool = False):
        from vopt.core.progress import ProgressLog

        self.console = console
        self.quiet = quiet
        self.debug = debug or os.environ.get("VOPT_DEBUG") == "1"
        self._progress: Any = None
        mode = os.environ.get("VOPT_PROGRESS")
        self._live = mode == "1" or (mode != "0" and console.is_terminal)
        try:
            interval = float(os.environ.get("VOPT_PROGRESS_INTERVAL", "15"))
        except ValueError:
            interval = 15.0
        # seconds between plain progress lines in a log; 0: none (a terminal has the live bars)
        self.progress_interval = interval if (mode != "0" and not self._live and not quiet) else 0.0
        self._log = ProgressLog(self.progress_interval)
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        self._stop_ticker = threading.Event()
        self._capture: Any = None
        self._console_file: Any = None
        self._depth = 0

    # -- capture of third-party output, and the ticker that prints log progress --------------------------

    def _enter(self) -> None:
        """The outermost stage or bar starts capturing and (in a log) the progress ticker."""
        self._depth += 1
        if self._depth > 1:
            return
        if not self.debug:
            from vopt.cli.capture import Capture

            self._capture = Capture()
            self._console_file = self.console._file  # None: follow sys.stderr
            self._capture.start()
            self.console.file = self._capture.real_stderr
        if self._log.interval > 0:
            self._stop_ticker.clear()
            self._ticker = threading.Thread(target=self._tick, name="vopt-progress", daemon=True)
            self._ticker.start()

    def _exit(self) -> None:
        if self._depth == 0:
            return
        self._depth -= 1
        if self._depth > 0:
            return
        if self._ticker is not None:
            self._stop_ticker.set()
            self._ticker.join(timeout=5)
            self._ticker = None
        capture, self._capture = self._capture, None
        if capture is None:
            return
        text = capture.stop()
        self.console.file = self._console_file
        self._console_file = None
        self._report_captured(text)

    def _report_captured(self, text: str) -> list[tuple[str, str]]:
        from vopt.cli.capture import summarise

        lines = summarise(text).lines()
        for level, line in lines:
            if level == "warning":
                self.warn(line)
            else:
                self.note(line)
        return lines

    def library_output(self) -> list[tuple[str, str]]:
        """The summary lines of what libraries printed since the stage began (or since the last call), said
        now; the engine keeps them in the step's report. The rest of the stage's output comes at its end."""
        if self._capture is None:
            return []
        return self._report_captured(self._capture.take())

    def _tick(self) -> None:
        from vopt.core.progress import monotonic

        while not self._stop_ticker.wait(1.0):
            with self._lock:
                line = self._log.line(monotonic())
            if line is not None:
                self._print_plain(line)

    def _print_plain(self, line: str) -> None:
        with self._lock:
            self.console.print(line, markup=False, highlight=False, soft_wrap=True)

    # -- the Reporter interface --------------------------------------------------------------------------

    def stage_start(self, name: str, detail: str = "") -> None:
        from vopt.core.progress import monotonic

        with self._lock:
            self._log.begin_stage(name, monotonic())
        self._enter()
        if self.quiet or not self._live:
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("  {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
            # sys.stdout/sys.stderr belong to the capture: library prints must not be drawn above the bar
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._progress.start()
        self._progress.add_task(f"{name} ...", total=None)

    def _stop_stage(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self._exit()
        with self._lock:
            self._log.end_stage()

    def stage_end(self, name: str, *, cached: bool, seconds: float, detail: str = "") -> None:
        self._stop_stage()
        if self.quiet:
            return
        from rich.markup import escape

        mark = "[dim]cached[/]     " if cached else f"[green]done[/] {seconds:6.2f}s"
        with self._lock:
            self.console.print(f"  {name:<10} {mark}  {escape(detail)}", highlight=False, soft_wrap=True)

    def abort(self) -> None:
        self._stop_stage()

    def info(self, message: str) -> None:
        if not self.quiet:
            with self._lock:
                self.console.print(message, highlight=False, soft_wrap=True, markup=False)

    def note(self, message: str) -> None:
        if not self.quiet:
            from rich.markup import escape

            with self._lock:
                self.console.print(f"[dim]note:[/] {escape(message)}", highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        from rich.markup import escape

        with self._lock:
            self.console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        from vopt.core.progress import monotonic

        with self._lock:
            task = self._log.push(description, total, monotonic())
        self._enter()
        progress = self._progress
        live_task = progress.add_task(description, total=total) if progress is not None else None

        def advance(n: int = 1) -> None:
            task.done += n
            if live_task is not None:
                progress.advance(live_task, n)

        try:
            yield advance
        finally:
            if live_task is not None:
                progress.remove_task(live_task)
            with self._lock:
                closing = self._log.pop(task, monotonic())
            self._exit()
            if closing is not None:
                self._print_plain(closing)
