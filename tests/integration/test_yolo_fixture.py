"""The trained YOLO11n fixture (tests/fixtures/yolo: shapes on real photos) two ways in: its Ultralytics
checkpoint through the trust rule, and the raw-head ONNX that `yolo export format=onnx` wrote (source: onnx,
family: yolo) with the NMS appended to its graph. Both validate on 16 generated held-out images with their
YOLO txt labels: matched boxes against the reference plus Ultralytics' NMS, and real mAP against the
labels."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from vopt.models.ultralytics_compat import INSTALL, available

FIXTURE = REPO / "tests" / "fixtures" / "yolo"
pytestmark = [
    pytest.mark.skipif(not available(), reason=f"needs Ultralytics: {INSTALL}"),
    pytest.mark.skipif(not (FIXTURE / "shapes-yolo11n.pt").is_file(), reason="no YOLO fixture"),
]


@pytest.fixture(scope="module")
def heldout(tmp_path_factory) -> Path:
    """16 held-out images of scripts/yolo_shapes.py (real-photo backgrounds: skip without them)."""
    sys.path.insert(0, str(REPO / "scripts"))
    import yolo_shapes

    if not yolo_shapes.imagenet_dir().is_dir():
        pytest.skip(f"no ImageNet sample photos at {yolo_shapes.imagenet_dir()}")
    root = tmp_path_factory.mktemp("shapes")
    return yolo_shapes.make_split(root, "heldout", 16, 0).images[0].parent


def _check(manifest: dict) -> dict:
    tm = manifest["validation"]["task_metrics"]
    assert tm["scoring"] == "in-graph post-processing"
    assert tm["reference_detections"] >= 30, tm  # the trained model finds the shapes
    assert tm["box_agreement"] >= 0.99 and tm["map50_95_vs_reference"] >= 0.99, tm
    # real accuracy against the YOLO txt labels, the same for the artifact as for the reference at fp32
    assert tm["labelled_images"] == 16 and tm["reference_map50_95"] > 0.5, tm
    assert abs(tm["map50_95_drop"]) < 0.5, tm
    assert manifest["validation"]["data"]["labels"].startswith("YOLO txt labels")
    return tm


def test_checkpoint_through_the_trust_rule(write_recipe, cli, tmp_path, heldout):
    recipe = {
        "name": "shapes-pt-cpu",
        "model": {
            "source": "ultralytics",
            "path": str(FIXTURE / "shapes-yolo11n.pt"),
            "trust": True,
            "weights": "pretrained",
            "input": {"shape": [1, 3, 320, 320], "name": "images"},
        },
        "export": {"nms": True, "score_threshold": 0.25},
        "compile": {"target": "cpu"},
        "validate": {"data": str(heldout), "samples": 16, "score_threshold": 0.25},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    load = next(s for s in manifest["steps"] if s["stage"] == "load")["report"]
    assert load["trust_granted"]["needed_for"].startswith("unpickling the Ultralytics checkpoint")
    _check(manifest)
    written = json.loads((tmp_path / "out" / "shapes-pt-cpu" / "manifest.json").read_text())
    shapes = ["circle", "rectangle", "triangle", "star", "cross", "ring"]
    assert written["artifact"]["meta"]["labels"] == shapes


def test_yolo_export_onnx_gets_its_nms_appended(write_recipe, cli, tmp_path, heldout):
    import onnx

    recipe = {
        "name": "shapes-onnx-cpu",
        "model": {
            "source": "onnx",
            "path": str(FIXTURE / "shapes-yolo11n.onnx"),
            "family": "yolo",
            "input": {"shape": [1, 3, 320, 320], "name": "images"},
        },
        "export": {"nms": True, "score_threshold": 0.25},
        "compile": {"target": "cpu"},
        "validate": {"data": str(heldout), "samples": 16, "score_threshold": 0.25},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    export = next(s for s in manifest["steps"] if s["stage"] == "export")["report"]
    assert export["nms_appended_to"] == "output0" and export["parity"]["worst_cosine"] > 0.9999
    ops = {n.op_type for n in onnx.load(str(tmp_path / "out" / "shapes-onnx-cpu" / "model.onnx")).graph.node}
    assert "NonMaxSuppression" in ops
    _check(manifest)


def test_openvino_int8_keeps_the_boxes_and_their_output_op_float(write_recipe, cli, tmp_path, heldout):
    """The trained fixture as NNCF int8 on OpenVINO, calibrated on 16 training images. OpenVINO names the ops
    that compute graph outputs after the outputs ('boxes'), not after their ONNX nodes: the family's
    '*/postprocess/*' must reach them too. When it did not, the last box op's input was quantized to 256
    steps over the image (mean IoU 0.95 and a 1.7-point mAP50-95 drop on the 100 held-out images; 0.979 and
    0.1 after)."""
    pytest.importorskip("nncf")
    import yolo_shapes  # on sys.path through the heldout fixture

    train = yolo_shapes.make_split(tmp_path / "shapes", "train", 16, 0).images[0].parent
    recipe = {
        "name": "shapes-ov-int8",
        "model": {
            "source": "ultralytics",
            "family": "yolo",
            "path": str(FIXTURE / "shapes-yolo11n.pt"),
            "trust": True,
            "weights": "pretrained",
            "input": {"shape": [1, 3, 320, 320], "name": "images"},
        },
        "preprocess": {"mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0], "channel_order": "RGB"},
        "export": {"nms": True, "score_threshold": 0.25},
        "quantize": {
            "precision": "int8",
            "calibration": {"data": str(train), "samples": 16, "method": "minmax"},
            "check": {"data": str(heldout), "samples": 8, "benchmark": False},
        },
        "compile": {"target": "openvino", "precision": "int8"},
        "validate": {"data": str(heldout), "samples": 16, "score_threshold": 0.25},
        "benchmark": None,
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    import openvino as ov

    ir = ov.Core().read_model(str(tmp_path / "out" / "shapes-ov-int8" / "openvino_model" / "model.xml"))
    outputs = {
        r.input_value(0).get_node().get_friendly_name(): r.input_value(0).get_node() for r in ir.get_results()
    }
    assert set(outputs) == {"boxes", "scores", "labels", "num_detections"}
    quantized_inputs = [
        name
        for name, op in outputs.items()
        if any(i.get_source_output().get_node().get_type_name() == "FakeQuantize" for i in op.inputs())
    ]
    assert not quantized_inputs
    tm = json.loads(res.stdout)["validation"]["task_metrics"]
    assert tm["reference_detections"] >= 30 and tm["box_agreement"] >= 0.95, tm
    assert tm["box_mean_iou"] >= 0.97, tm
