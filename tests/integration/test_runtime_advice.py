"""A cpu build times its ONNX file on OpenVINO too, and says so when OpenVINO is much faster."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model

pytest.importorskip("openvino")


def _build(write_recipe, cli, tmp_path):
    recipe = {
        "name": "advice",
        "model": tiny_model("resnet"),
        "compile": {"target": "cpu"},
        "quantize": {
            "precision": "int8",
            "calibration": {"samples": 8},
            "check": {"samples": 4, "benchmark": False},
        },
        "validate": None,
        "benchmark": {"iterations": 3, "warmup": 1, "baseline": False},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout), res.output


@pytest.mark.slow
def test_cpu_benchmark_times_the_same_qdq_file_on_openvino(write_recipe, cli, tmp_path, monkeypatch):
    import vopt.bench.alternatives as alternatives

    monkeypatch.setattr(alternatives, "ADVISE_AT", 0.0)  # any ratio is 'much faster': the message must appear
    manifest, output = _build(write_recipe, cli, tmp_path)
    advice = manifest["benchmark"]["runtime_advice"]
    assert advice["status"] == "ok" and advice["onnxruntime_img_s"] > 0 and advice["openvino_img_s"] > 0
    assert advice["openvino_speedup"] == pytest.approx(
        advice["openvino_img_s"] / advice["onnxruntime_img_s"], rel=0.01
    )
    assert "OpenVINO runs this ONNX file" in advice["advice"] and "compile.target: openvino" in output
    # Timed on the quantize step's QDQ file: ORT's compiled graph has com.microsoft ops OpenVINO cannot read.
    step = next(s for s in manifest["steps"] if s["stage"] == "quantize")
    assert advice["file"] == "model.onnx" and step["output_sha256"]


@pytest.mark.slow
def test_no_advice_below_the_threshold(write_recipe, cli, tmp_path, monkeypatch):
    import vopt.bench.alternatives as alternatives

    monkeypatch.setattr(alternatives, "ADVISE_AT", 1e9)
    manifest, output = _build(write_recipe, cli, tmp_path)
    assert "advice" not in manifest["benchmark"]["runtime_advice"] and "OpenVINO runs" not in output
