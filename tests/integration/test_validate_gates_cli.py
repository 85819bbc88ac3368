"""Validation through the CLI in process: task metrics, gates and their exit codes, the image set used."""

from __future__ import annotations

import json
import shutil

from tests.conftest import tiny_model
from vopt.datasets.images import SAMPLES_DIR


def _recipe(name, validate):
    return {"name": name, "model": tiny_model("resnet"), "compile": {"target": "cpu"}, "validate": validate}


def test_gates_pass_with_task_metrics(write_recipe, cli, tmp_path):
    path = write_recipe(
        _recipe(
            "gates-ok",
            {
                "samples": 6,
                "gates": {
                    "top1_agreement": ">=0.99",
                    "top5_agreement": ">=0.99",
                    "kl_divergence": "<1e-6",
                    "centered_cosine": ">=0.999",
                },
            },
        )
    )
    res = cli("build", path, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["validation"]
    assert v["task"] == "image-classification"
    tm = v["task_metrics"]
    assert tm["top1_agreement"] == 1.0 and tm["top5_agreement"] == 1.0
    assert 0 <= tm["kl_divergence"] < 1e-6
    assert [g["passed"] for g in v["gates"]] == [True] * 4
    assert v["images"].startswith("built-in sample images") and len(v["image_files"]) == 6
    # The outputs really vary across images, so the parity numbers mean something.
    assert v["reference_spread"]["logits"] < 0.99


def test_failed_gate_exits_3_naming_metric_value_threshold(write_recipe, cli, tmp_path):
    # fp32 ORT vs PyTorch differs by ~1e-6, so SQNR is near 100-120 dB: 200 dB cannot pass.
    path = write_recipe(
        _recipe("gates-fail", {"samples": 4, "gates": {"sqnr_db": ">=200", "top1_agreement": ">=0.99"}})
    )
    res = cli("build", path, "--out", tmp_path / "out")
    assert res.exit_code == 3, res.output
    assert "1 gate failed" in res.output
    line = next(ln for ln in res.output.splitlines() if "sqnr_db" in ln)
    assert "needs >=200" in line and "(validate)" in line
    value = float(line.split("=")[1].split(",")[0])
    assert 60 < value < 200
    manifest = json.loads((tmp_path / "out" / "gates-fail" / "manifest.json").read_text())
    assert manifest["status"] == "gate_failed"
    assert [f["metric"] for f in manifest["gate_failures"]] == ["sqnr_db"]
    assert "FAIL" in (tmp_path / "out" / "gates-fail" / "report.md").read_text()


def test_unknown_gate_metric_is_a_recipe_error(write_recipe, cli, tmp_path):
    path = write_recipe(_recipe("gates-typo", {"samples": 2, "gates": {"top1_agrement": ">=0.9"}}))
    res = cli("build", path, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "top1_agrement" in res.output and "top1_agreement" in res.output


def test_validation_on_a_list_of_folders(write_recipe, cli, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(SAMPLES_DIR / "coffee.jpg", a)
    shutil.copy(SAMPLES_DIR / "camera.png", b)  # grayscale: becomes 3-channel
    path = write_recipe(_recipe("folders", {"data": [str(a), str(b)], "samples": 4}))
    res = cli("build", path, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["validation"]
    assert v["images"] == str([str(a), str(b)]) and v["image_files"] == ["camera.png", "coffee.jpg"]
    assert v["samples"] == 4 and v["task_metrics"]["top1_agreement"] == 1.0
    assert str(a) in (tmp_path / "out" / "folders" / "report.md").read_text()


def test_model_loaded_from_onnx_is_validated_against_the_source_onnx(write_recipe, cli, tmp_path):
    from tests.integration.test_bench_cli import tiny_onnx

    src = tiny_onnx(tmp_path / "src.onnx")
    path = write_recipe(
        {
            "name": "from-onnx",
            "model": {"source": "onnx", "path": str(src), "input": {"shape": [1, 3, 32, 32]}},
            "compile": {"target": "cpu"},
            "validate": {"samples": 4, "gates": {"top1_agreement": ">=0.99"}},
        }
    )
    res = cli("build", path, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["validation"]
    assert v["status"] == "ok" and v["reference_runtime"] == "source ONNX on onnxruntime-cpu"
    assert v["task_metrics"]["top1_agreement"] == 1.0 and v["gates"][0]["passed"]
    assert (
        "compared with source ONNX on onnxruntime-cpu"
        in (tmp_path / "out" / "from-onnx" / "report.md").read_text()
    )
