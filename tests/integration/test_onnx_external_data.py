"""An ONNX model with external data (every model over 2 GB has it; here a small one saved the same way)
builds: load, quantize, compile on cpu and openvino, the cache and the build directory all carry its data
files, and an edit of the data file alone is a new model, not a cache hit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

SHAPE = [1, 3, 32, 32]


def _external_model(folder: Path, seed: int = 0) -> Path:
    import onnx
    import torch

    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, stride=2),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    tmp = folder / "inline.onnx"
    torch.onnx.export(
        net,
        (torch.randn(*SHAPE),),
        str(tmp),
        dynamo=False,
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "n"}},
    )
    path = folder / "net.onnx"
    onnx.save(
        onnx.load(str(tmp)),
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="net.onnx.data",
        size_threshold=0,
    )
    tmp.unlink()
    return path


def _outputs(path: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: images})[0]


def _build(cli, write_recipe, tmp_path, model: Path, target: str, **extra):
    recipe = write_recipe(
        {
            "name": f"ext-{target}",
            "model": {"source": "onnx", "path": str(model), "input": {"shape": SHAPE}},
            "compile": {"target": target},
            "validate": {"samples": 8, "default_gates": False},
            **extra,
        },
        name=f"{target}.yaml",
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _payloads(cache: Path, manifest: dict, stage: str) -> list[str]:
    key = next(s["key"] for s in manifest["steps"] if s["stage"] == stage)
    return sorted(p.name for p in (cache / key[:2] / key / "payload").rglob("*") if p.is_file())


def test_external_data_onnx_builds_on_cpu_and_ships_its_data(cli, write_recipe, tmp_path, _isolated_cache):
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    (tmp_path / "src").mkdir()
    model = _external_model(tmp_path / "src")
    manifest = _build(cli, write_recipe, tmp_path, model, "cpu")
    assert _payloads(_isolated_cache, manifest, "load") == ["model.onnx", "net.onnx.data"]
    assert _payloads(_isolated_cache, manifest, "compile") == ["model.onnx", "model.onnx.data"]
    shipped = tmp_path / "out" / "ext-cpu"
    assert sorted(p.name for p in shipped.iterdir() if p.name.startswith("model")) == [
        "model.onnx",
        "model.onnx.data",
    ]
    images = load_batch(None, Preprocess(size=SHAPE[2:]), 4)
    assert np.abs(_outputs(shipped / "model.onnx", images) - _outputs(model, images)).max() < 1e-4


def test_external_data_onnx_quantizes_and_compiles_for_openvino(cli, write_recipe, tmp_path):
    (tmp_path / "src").mkdir()
    model = _external_model(tmp_path / "src")
    quantized = _build(
        cli,
        write_recipe,
        tmp_path,
        model,
        "cpu",
        quantize={"precision": "int8", "calibration": {"samples": 8}},
    )
    assert {s["stage"] for s in quantized["steps"]} >= {"quantize", "compile", "validate"}
    pytest.importorskip("openvino")
    openvino = _build(cli, write_recipe, tmp_path, model, "openvino")
    validate = next(s for s in openvino["steps"] if s["stage"] == "validate")
    assert validate["report"]["metrics"]["logits"]["cosine"] > 0.9999


def test_editing_only_the_external_data_is_a_new_model(cli, write_recipe, tmp_path):
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    (tmp_path / "src").mkdir()
    (tmp_path / "other").mkdir()
    model = _external_model(tmp_path / "src", seed=0)
    first = _build(cli, write_recipe, tmp_path, model, "cpu")
    # Other weights, same graph file: only net.onnx.data changes.
    other = _external_model(tmp_path / "other", seed=1)
    assert other.read_bytes() == model.read_bytes()
    (tmp_path / "src" / "net.onnx.data").write_bytes((tmp_path / "other" / "net.onnx.data").read_bytes())
    again = _build(cli, write_recipe, tmp_path, model, "cpu")
    assert not any(s["cached"] for s in again["steps"] if s["stage"] in ("load", "compile"))
    images = load_batch(None, Preprocess(size=SHAPE[2:]), 4)
    shipped = tmp_path / "out" / "ext-cpu" / "model.onnx"
    assert np.abs(_outputs(shipped, images) - _outputs(other, images)).max() < 1e-4
    assert np.abs(_outputs(shipped, images) - _outputs(model, images)).max() < 1e-4
    load = [next(s for s in m["steps"] if s["stage"] == "load") for m in (first, again)]
    assert load[0]["output_sha256"] == load[1]["output_sha256"]  # the same .onnx bytes: only the data moved
