"""Validation sees real drift: an int8 artifact against the fp32 PyTorch model."""

from __future__ import annotations

import json

from tests.conftest import tiny_model


def test_int8_drift_is_measured_and_gated(write_recipe, cli, tmp_path):
    recipe = write_recipe(
        {
            "name": "q8",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "quantize": {"precision": "int8", "calibration": {"samples": 8}},
            "validate": {"samples": 8, "gates": {"sqnr_db": ">=60", "top5_agreement": ">=0.5"}},
        }
    )
    res = cli("build", recipe, "--out", tmp_path / "out")
    assert res.exit_code == 3, res.output
    assert "sqnr_db = " in res.output and "needs >=60 (validate)" in res.output
    assert "top5_agreement" not in res.output  # that gate passed
    m = json.loads((tmp_path / "out" / "q8" / "manifest.json").read_text())
    v = m["validation"]
    logits = v["metrics"]["logits"]
    # int8 noise: tens of dB, not the ~120 dB of an fp32 export; the task metrics see it too.
    assert 5 < logits["sqnr_db"] < 60 and logits["max_abs_diff"] > 1e-3
    assert 0.5 < logits["centered_cosine"] < 0.99999
    assert v["task_metrics"]["kl_divergence"] > 1e-6
    assert 0 <= v["task_metrics"]["top1_agreement"] <= 1 and v["task_metrics"]["top5_agreement"] >= 0.5
    assert [g["passed"] for g in v["gates"] if not g.get("default")] == [
        False,
        True,
    ]  # then the task defaults
