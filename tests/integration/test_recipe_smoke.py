"""Shipped recipes under `--profile smoke` (tiny configs): the pairs whose gates need the right output
names."""

from __future__ import annotations

import json

from tests.conftest import REPO


def test_detr_openvino_smoke_measures_box_agreement(cli, tmp_path, monkeypatch):
    """OpenVINO's compiled DETR output also answers to the exporter's '/model/bbox_predictor/...' name; the
    runner must return it as pred_boxes, or the family's box_agreement gate has nothing to measure (exit
    2)."""
    monkeypatch.chdir(REPO)
    result = cli(
        "build",
        "recipes/detr-openvino.yaml",
        "--profile",
        "smoke",
        "--out",
        tmp_path / "out",
        "--cache-dir",
        tmp_path / "cache",
        "--json",
        "--set",
        "benchmark=null",
    )
    assert result.exit_code == 0, result.output
    validate = next(s for s in json.loads(result.stdout)["steps"] if s["stage"] == "validate")["report"]
    assert set(validate["metrics"]) == {"logits", "pred_boxes"}
    (box,) = [g for g in validate["gates"] if g["metric"] == "box_agreement"]  # beside the task's defaults
    assert box["passed"]
