"""`vopt build A.yaml B.yaml -j N`: one child `vopt build` process per recipe, at most N at a time, on one
machine.

Children share the step cache. Each build's output is printed in one piece when it ends, so parallel logs do
not interleave. Distinct recipes write distinct build directories; two children that reach the same cache key
(the same model loaded by two recipes) both commit it by atomic rename, and the second one's rename loses to
the first.

Children stop with the parent. They stay in its process group (a terminal's Ctrl-C reaches them directly); a
SIGINT or SIGTERM sent to the parent alone is passed on to every running child, no queued build starts, and
the parent waits for them to clean up (each leaves nothing partial, as any interrupted build) before it exits
130 / 143. A parent killed with SIGKILL cannot pass anything on: each child asks the kernel for SIGTERM when
its parent dies (prctl PR_SET_PDEATHSIG on Linux; elsewhere a thread that watches its parent pid), so none is
left orphaned, building on and writing its build directory later."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Set in each child's environment: the pid of the `vopt build -j` that started it (see die_with_parent).
PARENT_ENV = "VOPT_PARENT_PID"
STOP_GRACE_S = 60.0  # how long stopped children get to clean up before they are killed


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
    the end (children print no progress lines: VOPT_PROGRESS=0). An interrupt of the parent (raised here in
    the main thread) stops every child before it is raised on."""
    from concurrent.futures import FIRST_COMPLETED, wait

    started: dict[Path, float] = {}
    running: dict[Path, subprocess.Popen] = {}
    stopping = threading.Event()
    lock = threading.Lock()
    env = {**os.environ, "VOPT_PROGRESS": "0", PARENT_ENV: str(os.getpid())}

    def one(item: tuple[Path, list[str]]) -> ChildResult | None:
        recipe, cmd = item
        with lock:  # no child starts once the parent is stopping
            if stopping.is_set():
                return None
            start = started[recipe] = time.perf_counter()
            proc = running[recipe] = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
            )
        output, _ = proc.communicate()
        with lock:
            running.pop(recipe, None)
            started.pop(recipe, None)
        result = ChildResult(recipe, proc.returncode, output, time.perf_counter() - start)
        if not stopping.is_set():
            on_done(result)
        return result

    pool = ThreadPoolExecutor(max_workers=max(1, jobs))
    try:
        futures = [pool.submit(one, item) for item in commands]
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=interval or None, return_when=FIRST_COMPLETED)
            if not finished and on_wait is not None:
                now = time.perf_counter()
                on_wait([(r, now - t) for r, t in list(started.items())])
        return [f.result() for f in futures]  # type: ignore[misc]  # None only once stopping
    except BaseException as exc:
        with lock:
            stopping.set()
            children = list(running.values())
        _stop(children, getattr(exc, "signum", signal.SIGTERM))
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop(children: list[subprocess.Popen], signum: int) -> None:
    """Pass the parent's signal on to each running child and wait for them to clean up; kill what is left
    after STOP_GRACE_S (a child stuck in native code)."""
    for proc in children:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
    deadline = time.monotonic() + STOP_GRACE_S
    for proc in children:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def die_with_parent() -> None:
    """In a child of `vopt build -j` (PARENT_ENV set): end this build with SIGTERM, which it handles like any
    interrupt, when the parent dies, even by SIGKILL, so no child is left orphaned."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not parent.isdigit():
        return
    pid = int(parent)
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if ok:
            if os.getppid() != pid:  # the parent died before the request was made
                os.kill(os.getpid(), signal.SIGTERM)
            return

    def watch() -> None:
        while os.getppid() == pid:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="vopt-parent-watch", daemon=True).start()
