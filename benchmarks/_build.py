"""`vopt build --json` in a child process, as a user's CI job runs it: the benchmarks' builds go through here,
so the wall time they report includes vopt's own start (imports, plugin discovery)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_build(
    recipe: Path | str, out: Path, cache: Path, sets: Sequence[str] = (), flags: Sequence[str] = ()
) -> tuple[subprocess.CompletedProcess, float]:
    """`python -m vopt build RECIPE --set ... FLAGS --out OUT --json` with VOPT_CACHE_DIR=cache, run from the
    repo; returns the finished process (stdout: the manifest) and its wall time in seconds."""
    cmd = [sys.executable, "-m", "vopt", "build", str(recipe), *(a for s in sets for a in ("--set", s))]
    cmd += [*flags, "--out", str(out), "--json"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "VOPT_CACHE_DIR": str(cache)}
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO)
    return done, time.perf_counter() - start
