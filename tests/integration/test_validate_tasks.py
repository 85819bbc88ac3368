"""Task metrics end to end on tiny random detection and segmentation models (ORT vs PyTorch, fp32)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


@pytest.mark.slow
@pytest.mark.parametrize(
    ("family", "gates", "expect"),
    [
        ("detr", {"box_agreement": ">=0.99", "box_mean_iou": ">=0.99"}, {"scoring": "softmax-no-object"}),
        ("rt_detr", {"box_agreement": ">=0.99"}, {"scoring": "sigmoid"}),
        ("segformer", {"miou": ">=0.99", "pixel_agreement": ">=0.99"}, {}),
    ],
)
def test_task_metrics_and_gates(family, gates, expect, write_recipe, cli, tmp_path):
    # Random-weight detectors score low: a low threshold gives real detections to match.
    recipe = {
        "name": f"t-{family}",
        "model": tiny_model(family),
        "compile": {"target": "cpu"},
        "validate": {"samples": 3, "score_threshold": 0.05, "gates": gates},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["validation"]
    tm = v["task_metrics"]
    # the recipe's gates, then the task's defaults (vopt.validate.defaults) for the metrics it leaves ungated
    assert all(g["passed"] for g in v["gates"]) and [
        g["metric"] for g in v["gates"] if not g.get("default")
    ] == list(gates)
    for key, value in expect.items():
        assert tm[key] == value
    if family == "segformer":
        assert tm["miou"] == 1.0 and tm["classes"] >= 2
    else:
        assert tm["reference_detections"] > 0  # not vacuous
        assert tm["matched_detections"] == tm["reference_detections"] == tm["artifact_detections"]
        assert tm["box_mean_iou"] > 0.999


@pytest.mark.slow
def test_a_sigmoid_detector_on_the_generic_path_is_scored_with_sigmoid(write_recipe, cli, tmp_path):
    """Conditional DETR has no family module: its config (`focal_alpha`: a focal-loss head with no no-object
    class) decides the scoring, which the generic family's name cannot."""
    from vopt.models.families import get_family

    config = {"model_type": "conditional_detr", **get_family("detr").tiny_config}
    recipe = {
        "name": "t-conditional-detr",
        "model": {
            "source": "hf",
            "id": "tiny-conditional-detr",
            "weights": "random",
            "task": "object-detection",
            "config": config,
            "input": {"shape": [1, 3, 64, 64]},
        },
        "validate": {"samples": 3, "score_threshold": 0.05},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    load = next(s for s in manifest["steps"] if s["stage"] == "load")
    assert load["report"]["family"] == "generic"
    tm = manifest["validation"]["task_metrics"]
    assert tm["scoring"] == "sigmoid"
    assert manifest["artifact"]["meta"]["scoring"] == "sigmoid"  # the config's fact, for every later step
    assert tm["reference_detections"] > 0 and tm["matched_detections"] == tm["reference_detections"]
