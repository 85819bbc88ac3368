"""`vopt build A.yaml B.yaml -j N`: one child `vopt build` process per recipe, at most N at a time, on one
machine.

Children share the step cache. Each build's output is printed in one piece when it ends, so parallel logs do
not interleave. Distinct recipes write distinct build directories; two children that reach the same cache key
(the same model loaded by two recipes) both commit it by atomic rename, and the second one's rename loses to
the first."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ChildResult:
    recipe: Path
    code: int
    output: str
    seconds: float


def child_command(
    recipe: Path, out: Path, sets: list[str], no_cache: bool, cache_dir: Path | None, debug: bool
) -> list[str]:
    cmd = [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(out)]
    for expr in sets:
        cmd += ["--set", expr]
    if no_cache:
        cmd.append("--no-cache")
    if cache_dir is not None:
        cmd += ["--cache-dir", str(cache_dir)]
    if debug:
        cmd.append("--debug")
    return cmd


def run_parallel(
    commands: list[tuple[Path, list[str]]],
    jobs: int,
    on_done,
    on_wait=None,
    interval: float = 0.0,
) -> list[ChildResult]:
    """Run the commands, `jobs` at a time; `on_done(result)` is called (in the caller's thread order of
    completion) as each finishes. Results come back in the order given. With `interval`, `on_wait(running)`
    is called when that many seconds pass with no build ending, `running` being (recipe, seconds so far) of
    each build under way: a log shows the builds are alive, since their own output comes in one piece at
    the end (children print no progress lines: VOPT_PROGRESS=0)."""
    import os
    from concurrent.futures import FIRST_COMPLETED, wait

    started: dict[Path, float] = {}
    env = {**os.environ, "VOPT_PROGRESS": "0"}

    def one(item: tuple[Path, list[str]]) -> ChildResult:
        recipe, cmd = item
        start = started[recipe] = time.perf_counter()
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False, env=env
        )
        result = ChildResult(recipe, proc.returncode, proc.stdout, time.perf_counter() - start)
        started.pop(recipe, None)
        on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, item) for item in commands]
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=interval or None, return_when=FIRST_COMPLETED)
            if not finished and on_wait is not None:
                now = time.perf_counter()
                on_wait([(r, now - t) for r, t in list(started.items())])
        return [f.result() for f in futures]
