"""Getting a runner for an artifact from its target, at a given thread count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vopt.errors import BackendUnavailable
from vopt.runtimes.base import Runner, Unavailable


def thread_list(threads: int | list[int] | None) -> list[int | None]:
    if threads is None:
        return [None]
    return [threads] if isinstance(threads, int) else list(dict.fromkeys(threads)) or [None]


def runner_factory(
    target: Any, artifact: Any, compile_cfg: dict[str, Any], threads: int | list[int] | None
) -> tuple[Callable[[int | None], Runner], list[int | None], str | None]:
    """(make_runner(threads), the thread counts to sweep, a note when the target cannot set threads).
    With no thread count asked for, the target's own `threads` setting (if any) is used."""
    cfg = target.Config.model_validate(compile_cfg)
    wanted = thread_list(threads)
    has_threads = "threads" in type(cfg).model_fields
    note = None
    if not has_threads:
        if wanted != [None]:
            note = f"target '{target.name}' has no thread setting; its runtime picks the thread count"
        wanted = [None]
    elif wanted == [None]:
        wanted = [cfg.threads]

    def make(n: int | None) -> Runner:
        run = target.runner(artifact, cfg.model_copy(update={"threads": n}) if has_threads else cfg)
        if isinstance(run, Unavailable):
            raise BackendUnavailable(f"cannot run the {target.name} artifact here: {run.reason}")
        return run

    return make, wanted, note
