"""`vopt build -j 2` and signals: a SIGINT or SIGTERM sent to the parent alone reaches its children, which
stop with it and leave nothing partial; a SIGKILL of the parent leaves no child building on. Real child builds
of two tiny recipes, each paused by the test hook (VOPT_TEST_PAUSE_AT, one marker per child) after export
wrote its files: no timing is assumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
NET = """
import torch.nn as nn


def build(width=4):
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Flatten())
"""


def _processes_with(token: str) -> list[int]:
    """Pids of live processes whose environment carries `token` (the parent's children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in environ and state != "Z":
            found.append(int(entry.name))
    return found


def _wait(condition, what: str, limit: float = 300) -> None:
    deadline = time.monotonic() + limit  # a failsafe only: each wait ends on an event, not a duration
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find orphans")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_parallel_build_children_stop_with_the_parent(tmp_path, sig):
    (tmp_path / "parnet.py").write_text(NET)
    recipes = []
    for name, width in (("a", 4), ("b", 6)):  # different models: neither waits on the other's step lock
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\n"
            f"model: {{source: python, arch: 'parnet:build', kwargs: {{width: {width}}}, weights: random,"
            " input: {shape: [1, 3, 16, 16]}}\n"
            "validate: null\n"
        )
        recipes.append(str(path))
    cache, out, token = tmp_path / "cache", tmp_path / "out", f"vopt-test-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "VOPT_CACHE_DIR": str(cache),
        "VOPT_TEST_TOKEN": token,
        "VOPT_TEST_PAUSE_AT": f"export:{tmp_path}/paused-{{pid}}",
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    parent = subprocess.Popen(
        [sys.executable, "-m", "vopt", "build", *recipes, "-j", "2", "--out", str(out)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait(lambda: len(list(tmp_path.glob("paused-*"))) == 2 or parent.poll() is not None, "no pause")
        assert parent.poll() is None, parent.communicate()[0].decode()[-3000:]
        children = {int(p.name.split("-")[1]) for p in tmp_path.glob("paused-*")}
        assert len(children) == 2
        parent.send_signal(sig)  # to the parent alone, as `kill` or a CI runner sends it
        output = parent.communicate(timeout=120)[0].decode()
    finally:
        if parent.poll() is None:
            parent.kill()
    assert parent.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[sig], output
    # Every child stops (after SIGKILL of the parent, through the parent-death signal): no orphan builds on.
    _wait(lambda: not _processes_with(token), f"orphans left: {_processes_with(token)}", limit=120)
    assert not out.exists() or not list(out.iterdir())  # no build directory written after the signal
    # What each child wrote before it was stopped is gone; its finished load step is kept.
    assert not (cache / "tmp").exists() or not list((cache / "tmp").iterdir())
    assert len(list(cache.glob("??/*/entry.json"))) == 2  # each child's load step
    for entry in cache.glob("??/*"):
        assert not list(entry.rglob("partial.tmp"))
