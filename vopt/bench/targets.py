"""Getting a runner for an artifact from its target, with an optional thread count."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vopt.errors import BackendUnavailable
from vopt.targets.base import Runner, Unavailable


def runner_factory(target: Any, artifact: Any, compile_cfg: dict[str, Any], threads: int | None) -> tuple[Callable[[], Runner], int | None, str | None]:
    """(make_runner, threads in effect or None for the runtime's default, a note when threads cannot be set)."""
    cfg = target.Config.model_validate(compile_cfg)
    note = None
    if "threads" in type(cfg).model_fields:
        if threads:
            cfg = cfg.model_copy(update={"threads": threads})
        threads = cfg.threads
    elif threads:
        note = f"target '{target.name}' has no thread setting; its runtime picks the thread count"
        threads = None

    def make() -> Runner:
        run = target.runner(artifact, cfg)
        if isinstance(run, Unavailable):
            raise BackendUnavailable(f"cannot run the {target.name} artifact here: {run.reason}")
        return run

    return make, threads, note
