"""The cache holds no pickles, and its payloads are byte-reproducible: two builds of one recipe from clean
caches give the same bytes for the load step's weights, the ONNX export and the int8 ONNX."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path

import pytest

from tests.conftest import tiny_model

RECIPE = {
    "name": "tiny",
    "model": tiny_model("resnet"),
    "quantize": {"precision": "int8", "calibration": {"samples": 4}},
    "validate": {"samples": 2},
}


class _Payload:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def _entries(cache: Path, manifest: dict) -> dict[str, Path]:
    return {s["stage"]: cache / s["key"][:2] / s["key"] for s in manifest["steps"]}


def _plant(entry: Path, marker: Path) -> None:
    """Replace the load entry's weights with a pickle that runs a command, keeping the entry consistent
    (file list, sizes and hashes recomputed), as someone who can write the cache could."""
    for f in (entry / "payload").iterdir():
        f.unlink()
    evil = entry / "payload" / "model.pt"
    evil.write_bytes(pickle.dumps(_Payload(str(marker)), protocol=2))
    data = json.loads((entry / "entry.json").read_text())
    data["artifact"]["path"] = "@entry/payload/model.pt"
    data["artifact"]["meta"]["module_format"] = "pickle"
    data["artifact"]["sha256"] = hashlib.sha256(evil.read_bytes()).hexdigest()
    data["files"] = {"payload/model.pt": {"sha256": data["artifact"]["sha256"], "size": evil.stat().st_size}}
    from vopt.core.cache import write_entry

    write_entry(entry / "entry.json", data)  # sealed again, as the cache writes it


@pytest.mark.slow  # a full build
def test_a_pickle_planted_in_the_cache_is_never_run(cli, write_recipe, tmp_path, _isolated_cache):
    recipe = write_recipe({**RECIPE, "quantize": None})
    first = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert first.exit_code == 0, first.output
    manifest = json.loads(first.stdout)
    load_entry = _entries(_isolated_cache, manifest)["load"]
    assert [p.name for p in (load_entry / "payload").iterdir()] == ["model.safetensors"]
    marker = tmp_path / "pwned"
    _plant(load_entry, marker)
    again = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert again.exit_code == 0, again.output
    assert not marker.exists()  # the pickle was never loaded
    assert "discarded and rebuilt" in again.output and "the cache holds no pickles" in again.output
    rebuilt = json.loads(again.stdout)
    assert not rebuilt["steps"][0]["cached"]
    assert rebuilt["artifact"]["sha256"] == manifest["artifact"]["sha256"]


def test_load_module_refuses_a_pickle(tmp_path):
    from vopt.core.artifact import Artifact
    from vopt.errors import BuildError
    from vopt.models.resolve import load_module

    marker = tmp_path / "pwned"
    (tmp_path / "model.pt").write_bytes(pickle.dumps(_Payload(str(marker)), protocol=2))
    art = Artifact(path=str(tmp_path / "model.pt"), format="torch-module", meta={"module_format": "pickle"})
    with pytest.raises(BuildError, match="never loaded from the cache"):
        load_module(art)
    assert not marker.exists()


@pytest.mark.slow  # two full builds
def test_two_clean_builds_give_identical_bytes(cli, write_recipe, tmp_path, monkeypatch):
    recipe = write_recipe(RECIPE)
    payloads = []
    for i in range(2):
        cache = tmp_path / f"cache{i}"
        monkeypatch.setenv("VOPT_CACHE_DIR", str(cache))
        result = cli("build", recipe, "--out", tmp_path / f"out{i}", "--json")
        assert result.exit_code == 0, result.output
        entries = _entries(cache, json.loads(result.stdout))
        payloads.append(
            {
                stage: {
                    str(f.relative_to(entries[stage])): hashlib.sha256(f.read_bytes()).hexdigest()
                    for f in sorted((entries[stage] / "payload").rglob("*"))
                    if f.is_file()
                }
                for stage in ("load", "export", "quantize")
            }
        )
    for stage in ("load", "export", "quantize"):
        assert payloads[0][stage] == payloads[1][stage], stage
    assert list(payloads[0]["load"]) == ["payload/model.safetensors"]
    assert any(name.endswith(".onnx") for name in payloads[0]["quantize"])


def test_a_rebuilt_module_is_its_own_copy_with_the_files_weights(tmp_path):
    """Later steps rebuild a transformers architecture from a kept template (a deep copy, not a second
    weight init). Each load must still be independent, take every weight from the file, and keep the
    buffers the architecture computes itself (Swin's relative position index)."""
    import torch

    from vopt.models import store
    from vopt.recipe.models import Recipe
    from vopt.registry import get_source

    recipe = Recipe.model_validate({"name": "u", "model": tiny_model("swin")})
    loaded = get_source("hf").load(recipe.model)
    store.save(loaded.module, tmp_path / "a.safetensors")
    x = torch.randn(1, 3, *recipe.model.input.shape[2:])
    with torch.no_grad():
        want = loaded.module(pixel_values=x).logits
    first = store.load(tmp_path / "a.safetensors", loaded.reference)
    with torch.no_grad():
        next(first.parameters()).mul_(0.0)  # a step that edits its copy in place
    second = store.load(tmp_path / "a.safetensors", loaded.reference)
    assert second is not first
    with torch.no_grad():
        got = second(pixel_values=x).logits
    torch.testing.assert_close(got, want)
    index = "relative_position_index"
    for (name, buf), (_, expect) in zip(
        second.named_buffers(), loaded.module.named_buffers(), strict=True
    ):
        if name.endswith(index):
            assert torch.equal(buf, expect), name
