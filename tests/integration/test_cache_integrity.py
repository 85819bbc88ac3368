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


def test_every_bit_flip_in_entry_json_is_a_miss(tmp_path):
    """Every byte a hit serves is covered by its check: entry.json (the recorded io spec, metrics and report
    fields) is sealed, so flipping any one bit of it makes the entry damaged, never a hit with that value."""
    import shutil

    from vopt.core.artifact import Artifact, IOSpec, TensorSpec
    from vopt.core.cache import Cache

    cache = Cache(tmp_path / "c")
    work = cache.new_workdir()
    (work / "payload" / "model.onnx").write_bytes(b"x" * 64)
    art = Artifact(
        path=str(work / "payload" / "model.onnx"),
        format="onnx",
        io=IOSpec(
            inputs=[TensorSpec(name="pixel_values", shape=["batch", 3, 224, 224])],
            outputs=[TensorSpec(name="logits", shape=["batch", 1000])],
        ),
        meta={"family": "resnet", "task": "image-classification", "labels": ["cat", "dog"]},
    )
    key = "cd" * 32
    report = {"summary": "cosine 0.999912", "metrics": {"cosine": 0.999912, "top1_agreement": 0.98}}
    cache.commit(key, work, art, report, 1.5)
    entry = tmp_path / "c" / key[:2] / key
    pristine = tmp_path / "pristine"
    shutil.copytree(entry, pristine)
    raw = (pristine / "entry.json").read_bytes()
    assert cache.get(key) is not None  # intact: a hit
    hits = []
    for i in range(len(raw)):
        flipped = bytearray(raw)
        flipped[i] ^= 1 << (i % 8)
        shutil.rmtree(entry, ignore_errors=True)
        shutil.copytree(pristine, entry)
        (entry / "entry.json").write_bytes(bytes(flipped))
        if cache.get(key) is not None:
            hits.append((i, raw[i : i + 1]))
    assert hits == [], f"{len(hits)} of {len(raw)} one-bit flips were served as hits, e.g. {hits[:5]}"
    assert len(cache.take_warnings()) == len(raw)  # each one discarded and reported


def test_a_flipped_metric_in_entry_json_is_rebuilt_not_reported(cli, write_recipe, tmp_path, _isolated_cache):
    recipe, out = _recipe(write_recipe), tmp_path / "out"
    first, _ = _build(cli, recipe, out)
    entry = _entry_of(_isolated_cache, first, "validate")
    meta = entry / "entry.json"
    raw = bytearray(meta.read_bytes())
    at = raw.index(b'"summary": "') + len(b'"summary": "')
    while not chr(raw[at]).isdigit():
        at += 1
    raw[at] ^= 0x01  # one digit of the reported figure becomes another digit
    meta.write_bytes(bytes(raw))
    again, output = _build(cli, recipe, out)
    stages = {s["stage"]: s for s in again["steps"]}
    assert not stages["validate"]["cached"] and stages["compile"]["cached"]
    assert "entry.json does not match its seal" in output
    first_validate = next(s for s in first["steps"] if s["stage"] == "validate")
    assert stages["validate"]["report"]["summary"] == first_validate["report"]["summary"]


def _bmp_folder(folder: Path, n: int = 6) -> list[Path]:
    """Real photos (the shipped samples) as uncompressed BMPs: a same-size edit keeps them readable."""
    from PIL import Image

    from vopt.datasets.images import SAMPLES_DIR, image_files

    folder.mkdir()
    out = []
    for i, src in enumerate(image_files(SAMPLES_DIR)[:n]):
        path = folder / f"img{i}.bmp"
        Image.open(src).convert("RGB").resize((64, 64)).save(path)
        out.append(path)
    return out


def _validated(write_recipe, data: Path, **validate):
    return write_recipe(
        {
            "name": "tiny",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "validate": {"data": str(data), "samples": 6, "default_gates": False, **validate},
        }
    )


def test_a_same_size_image_edit_in_the_same_second_re_runs_validate(cli, write_recipe, tmp_path):
    images = _bmp_folder(tmp_path / "data")
    recipe, out = _validated(write_recipe, tmp_path / "data"), tmp_path / "out"
    first, _ = _build(cli, recipe, out)
    target = images[2]
    st = target.stat()
    raw = bytearray(target.read_bytes())
    for i in range(200, len(raw), 7):
        raw[i] = 255 - raw[i]  # other pixels, same size
    target.write_bytes(bytes(raw))
    import os

    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime, to the nanosecond
    assert target.stat().st_size == st.st_size and target.stat().st_mtime_ns == st.st_mtime_ns
    again, _ = _build(cli, recipe, out)
    stages = {s["stage"]: s for s in again["steps"]}
    assert stages["compile"]["cached"] and not stages["validate"]["cached"]
    third, _ = _build(cli, recipe, out)
    assert all(s["cached"] for s in third["steps"])  # unchanged since: a hit again


def test_a_rewritten_labels_file_re_runs_validate(cli, write_recipe, tmp_path):
    images = _bmp_folder(tmp_path / "data")
    labels = tmp_path / "data" / "labels.csv"
    labels.write_text("".join(f"{p.name},0\n" for p in images))
    recipe, out = _validated(write_recipe, tmp_path / "data"), tmp_path / "out"
    first, _ = _build(cli, recipe, out)
    v1 = next(s for s in first["steps"] if s["stage"] == "validate")
    assert v1["report"]["data"]["labels"].startswith("labels file")
    labels.write_text("".join(f"{p.name},1\n" for p in images))  # every label changed, same size
    again, _ = _build(cli, recipe, out)
    v2 = next(s for s in again["steps"] if s["stage"] == "validate")
    assert not v2["cached"]
    assert v2["key"] != v1["key"]
