"""Concurrent builds on one cache (file locks): two and four processes, with the same and different --out,
all finish with correct artifacts, and the cache holds exactly one verified entry per step."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, tiny_model


@pytest.mark.parametrize("outs", [["a", "a"], ["a", "a", "b", "c"]], ids=["2-same-out", "4-mixed-out"])
def test_concurrent_builds_share_one_cache(tmp_path, outs):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        yaml.safe_dump({"name": "tiny", "model": tiny_model("resnet"), "validate": {"samples": 2}})
    )
    cache = tmp_path / "cache"
    env = {**os.environ, "VOPT_CACHE_DIR": str(cache)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(tmp_path / o), "--json"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for o in outs
    ]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    for p, _, stderr in results:
        assert p.returncode == 0, stderr
    manifests = [json.loads(stdout) for _, stdout, _ in results]
    assert len({m["artifact"]["sha256"] for m in manifests}) == 1
    assert len({tuple(s["key"] for s in m["steps"]) for m in manifests}) == 1  # same keys: reproducible steps
    for o in set(outs):
        built = tmp_path / o / "tiny"
        shipped = json.loads((built / "manifest.json").read_text())
        data = (built / shipped["artifact"]["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == shipped["artifact"]["sha256"]
        assert not [p for p in (tmp_path / o).iterdir() if p.name != "tiny"]  # no staging or trash dirs
    entries = sorted(p.name for p in cache.glob("??/*") if (p / "entry.json").is_file())
    assert entries == sorted(s["key"] for s in manifests[0]["steps"])  # one entry per step, no duplicates
    assert not list(cache.glob("??/.*")) and not any((cache / "tmp").iterdir())
    from vopt.core.cache import Cache

    c = Cache(cache)
    assert all(c.get(k) is not None for k in entries) and not c.warnings  # every entry verifies
