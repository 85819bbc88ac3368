"""A cache hit is verified: a truncated, modified or malformed entry is discarded, rebuilt and reported,
never used; the manifest's hashes are those of the files shipped."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.conftest import tiny_model


def _recipe(write_recipe):
    return write_recipe(
        {
            "name": "tiny",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "validate": {"samples": 4},
        }
    )


def _entry_of(cache: Path, manifest: dict, stage: str) -> Path:
    key = next(s["key"] for s in manifest["steps"] if s["stage"] == stage)
    return cache / key[:2] / key


def _build(cli, recipe, out):
    result = cli("build", recipe, "--out", out, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout), result.output


def test_truncated_cached_artifact_is_rebuilt_not_shipped(cli, write_recipe, tmp_path, _isolated_cache):
    recipe, out = _recipe(write_recipe), tmp_path / "out"
    first, _ = _build(cli, recipe, out)
    entry = _entry_of(_isolated_cache, first, "compile")
    shipped = next(p for p in (entry / "payload").rglob("*.onnx"))
    size = shipped.stat().st_size
    with shipped.open("r+b") as f:
        f.truncate(size // 3)
    again, output = _build(cli, recipe, out)
    stages = {s["stage"]: s for s in again["steps"]}
    assert stages["load"]["cached"] and stages["export"]["cached"]
    assert not stages["compile"]["cached"]  # rebuilt; the same bytes again, so validate stays a hit
    assert "discarded and rebuilt" in output and "does not match its recorded size and sha256" in output
    assert any("discarded and rebuilt" in w for w in again["warnings"])
    built = out / "tiny" / again["artifact"]["file"]
    assert built.stat().st_size == size
    assert (
        hashlib.sha256(built.read_bytes()).hexdigest()
        == again["artifact"]["sha256"]
        == first["artifact"]["sha256"]
    )
    import onnxruntime as ort

    ort.InferenceSession(str(built), providers=["CPUExecutionProvider"])  # the shipped file loads


@pytest.mark.parametrize("damage", ["no-artifact-key", "bad-json", "flipped-byte", "extra-file"])
def test_malformed_entry_is_discarded_never_a_key_error(cli, write_recipe, tmp_path, _isolated_cache, damage):
    recipe, out = _recipe(write_recipe), tmp_path / "out"
    first, _ = _build(cli, recipe, out)
    entry = _entry_of(_isolated_cache, first, "load")
    meta = entry / "entry.json"
    if damage == "no-artifact-key":
        data = json.loads(meta.read_text())
        del data["artifact"]
        meta.write_text(json.dumps(data))
    elif damage == "bad-json":
        meta.write_text(meta.read_text()[:40])
    elif damage == "flipped-byte":
        payload = next(p for p in (entry / "payload").iterdir() if p.is_file())
        raw = bytearray(payload.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        payload.write_bytes(bytes(raw))  # same size: only the hash can tell
    else:
        (entry / "payload" / "planted.py").write_text("print('hi')\n")
    again, output = _build(cli, recipe, out)
    assert "KeyError" not in output and "internal error" not in output
    assert "discarded and rebuilt" in output
    assert not again["steps"][0]["cached"]  # load re-ran
    assert again["artifact"]["sha256"] == first["artifact"]["sha256"]  # and made the same bytes
    third, output = _build(cli, recipe, out)
    assert all(s["cached"] for s in third["steps"])  # the rebuilt entry verifies
    assert "discarded" not in output and not any("discarded" in w for w in third["warnings"])  # said once


def test_an_entry_damaged_while_the_step_lock_is_held_is_discarded(tmp_path):
    """The engine re-reads an entry under its step's lock; discarding it there must not deadlock."""
    from vopt.core.artifact import Artifact
    from vopt.core.cache import Cache

    cache = Cache(tmp_path / "c")
    work = cache.new_workdir()
    (work / "payload" / "f.bin").write_bytes(b"x" * 100)
    art = Artifact(path=str(work / "payload" / "f.bin"), format="onnx")
    cache.commit("ab" * 32, work, art, {}, 0.0)
    (tmp_path / "c" / "ab" / ("ab" * 32) / "payload" / "f.bin").write_bytes(b"y" * 100)
    with cache.lock("ab" * 32):
        assert cache.get("ab" * 32) is None
    assert "does not match its recorded size and sha256" in cache.take_warnings()[0]
    assert not (tmp_path / "c" / "ab" / ("ab" * 32)).exists()
