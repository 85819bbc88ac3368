"""export.postprocess: DETR, RT-DETR and YOLOS decode, score and keep top-k in the graph (boxes, scores,
labels), checked by box agreement against PyTorch plus the same post-processing in numpy."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import tiny_model


@pytest.mark.slow
@pytest.mark.parametrize("family", ["detr", "rt_detr", "yolos"])
def test_postprocessed_detector_matches_pytorch_plus_numpy_postprocessing(
    family, write_recipe, cli, tmp_path
):
    recipe = {
        "name": f"post-{family}",
        "model": tiny_model(family),
        "compile": {"target": "cpu"},
        "export": {"postprocess": True, "max_detections": 20, "parity_samples": 2},
        "validate": {"samples": 3, "score_threshold": 0.05, "gates": {"box_agreement": ">=0.99"}},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    outs = {o["name"]: o for o in m["artifact"]["io"]["outputs"]}
    assert list(outs) == ["boxes", "scores", "labels", "num_detections"]  # the contract YOLO's NMS shares
    assert outs["boxes"]["shape"][-1] == 4 and outs["labels"]["dtype"] == "int64"
    tm = m["validation"]["task_metrics"]
    assert tm["scoring"] == "in-graph post-processing"
    assert tm["reference_detections"] > 0 and tm["box_agreement"] >= 0.99, tm
    assert m["validation"]["gates"][0]["passed"]

    # Boxes are xyxy in input pixels, sorted by score, and masked below the threshold.
    import onnxruntime as ort

    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    size = m["artifact"]["preprocess"]["size"]
    sess = ort.InferenceSession(str(tmp_path / "out" / recipe["name"] / "model.onnx"))
    boxes, scores, labels, count = sess.run(
        None, {"pixel_values": load_batch(None, Preprocess(**m["artifact"]["preprocess"]), 2)}
    )
    assert boxes.shape[1] == scores.shape[1] <= 20 and np.all(np.diff(scores, axis=1) <= 1e-6)
    assert boxes[..., [0, 2]].max() <= size[1] * 1.5 and labels.min() >= -1
    assert np.array_equal(count, (labels >= 0).sum(1))


def test_postprocess_on_a_classifier_names_the_stage(write_recipe, cli, tmp_path):
    recipe = {
        "name": "post-resnet",
        "model": tiny_model("resnet"),
        "export": {"postprocess": True},
        "validate": None,
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out")
    assert res.exit_code == 1 and "export.postprocess" in res.output and "not a detector" in res.output


INT8_FOR_QNN = {
    "calibration": {"samples": 8},
    "check": {"samples": 4, "benchmark": False},
    "default_gates": False,
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "package", "runtime", "quantize", "min_agreement"),
    [
        # the same in-graph steps (TopK, Gather, the box decode) on OpenVINO's CPU plugin, at fp32
        ("openvino", "openvino", "openvino-cpu", None, 0.99),
        # quantized for the HTP (u8 QDQ) on the QNN simulator: int8, so 0.9 rather than fp32's 0.99
        ("qnn", "onnxruntime_qnn", "qnn-htp", INT8_FOR_QNN, 0.9),
    ],
)
def test_postprocessed_detr_on_other_runtimes_matches_pytorch_plus_numpy(
    target, package, runtime, quantize, min_agreement, write_recipe, cli, tmp_path
):
    pytest.importorskip(package)
    recipe = {
        "name": f"post-detr-{target}",
        "model": tiny_model("detr"),
        "compile": {"target": target},
        "export": {"postprocess": True, "max_detections": 20, "parity_samples": 2},
        **({"quantize": quantize} if quantize else {}),
        "validate": {
            "samples": 3,
            "score_threshold": 0.05,
            "gates": {"box_agreement": f">={min_agreement}"},
        },
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["validation"]["runtime"] == runtime
    names = [o["name"] for o in m["artifact"]["io"]["outputs"]]
    assert names == ["boxes", "scores", "labels", "num_detections"]
    tm = m["validation"]["task_metrics"]
    assert tm["scoring"] == "in-graph post-processing"
    assert tm["reference_detections"] > 0 and tm["box_agreement"] >= min_agreement, tm
