"""One object owns the terminal: human output on stderr (rich), machine output (JSON) on stdout."""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import typer
from rich.console import Console

from vopt.errors import VoptError
from vopt.pipeline.progress import Reporter

err = Console(stderr=True, highlight=False)
out = Console(highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def print_error(exc: VoptError) -> None:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(exc.message)}", highlight=False, soft_wrap=True)
    for line in exc.lines:
        err.print(f"  {line}", markup=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  hint: {exc.hint}", markup=False, soft_wrap=True)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """VoptError -> its lines and its exit code; anything else -> one line unless --debug / VOPT_DEBUG=1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        debug = bool(kwargs.get("debug")) or os.environ.get("VOPT_DEBUG") == "1"
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except VoptError as exc:
            if debug:
                raise
            print_error(exc)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/]: nothing partial was kept; the next run resumes from finished steps")
            raise typer.Exit(130) from None
        except Exception as exc:
            if debug:
                raise
            from rich.markup import escape

            err.print(f"[bold red]error:[/] internal error: {type(exc).__name__}: {escape(str(exc))}", soft_wrap=True)
            err.print("  rerun with --debug for the traceback", markup=False)
            raise typer.Exit(1) from None

    return wrapper


class RichReporter(Reporter):
    """Stage lines and progress bars on stderr."""

    def __init__(self, console: Console = err, quiet: bool = False):
        self.console = console
        self.quiet = quiet

    def stage_start(self, name: str, detail: str = "") -> None:
        pass

    def stage_end(self, name: str, *, cached: bool, seconds: float, detail: str = "") -> None:
        if self.quiet:
            return
        mark = "[dim]cached[/]" if cached else f"[green]done[/] {seconds:6.2f}s"
        self.console.print(f"  {name:<10} {mark}  {detail}", highlight=False, soft_wrap=True)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, highlight=False, soft_wrap=True)

    def warn(self, message: str) -> None:
        self.console.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        if self.quiet or not self.console.is_terminal and os.environ.get("VOPT_PROGRESS") != "1":
            yield lambda n=1: None
            return
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        columns = [SpinnerColumn(), TextColumn("  {task.description}")]
        if total:
            columns += [BarColumn(), MofNCompleteColumn()]
        columns.append(TimeElapsedColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task = progress.add_task(description, total=total)
            yield lambda n=1: progress.advance(task, n)
