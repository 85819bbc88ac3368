"""YOLO through Ultralytics with NMS in the graph: a random-weight YOLO11n (vopt's sane random init, so the
boxes are many and real) exported with ONNX NonMaxSuppression, built for ONNX Runtime CPU and OpenVINO, and
validated against PyTorch plus Ultralytics' own non_max_suppression: the same boxes, labels and scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vopt.models.ultralytics_compat import INSTALL, available

pytestmark = pytest.mark.skipif(not available(), reason=f"needs Ultralytics: {INSTALL}")

NMS = {"nms": True, "score_threshold": 0.25, "iou_threshold": 0.7, "max_detections": 100}


def _recipe(name: str, target: str, **model) -> dict:
    return {
        "name": name,
        "model": {
            "source": "ultralytics",
            "id": "yolo11n.yaml",
            "weights": "random",
            "input": {"shape": [1, 3, 320, 320], "name": "images"},
            **model,
        },
        "export": {"opset": 17, **NMS},
        "compile": {"target": target},
        "validate": {"samples": 8, "score_threshold": 0.25},
    }


def _steps(path: Path) -> dict:
    return {s["stage"]: s for s in json.loads(path.read_text())["steps"]}


def test_yolo11n_nms_in_graph_on_cpu_and_openvino(write_recipe, cli, tmp_path):
    pytest.importorskip("openvino")
    cpu = write_recipe(_recipe("yolo-nms-cpu", "cpu"), "cpu.yaml")
    ov = write_recipe(_recipe("yolo-nms-ov", "openvino"), "ov.yaml")
    result = cli("build", cpu, ov, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    import onnx

    for name in ("yolo-nms-cpu", "yolo-nms-ov"):
        m = json.loads((tmp_path / "out" / name / "manifest.json").read_text())
        outputs = m["artifact"]["io"]["outputs"]
        assert [o["name"] for o in outputs] == ["boxes", "scores", "labels", "num_detections"]
        assert outputs[0]["shape"][1:] == [100, 4] and outputs[2]["dtype"] == "int64"
        steps = _steps(tmp_path / "out" / name / "manifest.json")
        assert steps["load"]["report"]["family"] == "yolo"
        tm = steps["validate"]["report"]["task_metrics"]
        # many real detections, every one found again: same label, IoU >= 0.5, scores within 1e-3
        assert tm["reference_detections"] >= 50, tm
        assert tm["box_agreement"] >= 0.99, tm
        assert tm["missing_detections"] + tm["extra_detections"] <= 0.01 * tm["reference_detections"], tm
        assert tm["score_max_abs_error"] < 1e-3 and tm["box_mean_iou"] > 0.999, tm
        assert tm["map50_95_vs_reference"] >= 0.99, tm
        assert tm["scoring"] == "in-graph post-processing"
    onnx_path = tmp_path / "out" / "yolo-nms-cpu" / "model.onnx"
    ops = {n.op_type for n in onnx.load(str(onnx_path)).graph.node}
    assert {"NonMaxSuppression", "TopK", "ScatterElements"} <= ops
    import openvino as ov_rt

    ir = next((tmp_path / "out" / "yolo-nms-ov").rglob("*.xml"))
    types = {op.get_type_name() for op in ov_rt.Core().read_model(str(ir)).get_ops()}
    assert any(t.startswith("NonMaxSuppression") for t in types), sorted(types)
    # the graph's num_detections counts exactly the rows with a label
    import onnxruntime as ort

    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    images = load_batch(None, Preprocess(size=[320, 320], mean=[0, 0, 0], std=[1, 1, 1]), 4)
    boxes, scores, labels, count = ort.InferenceSession(str(onnx_path)).run(None, {"images": images})
    assert np.array_equal(count, (labels >= 0).sum(1)) and count.sum() > 0
    assert np.all(np.diff(scores, axis=1) <= 0) and np.all(scores[labels < 0] == 0)


def test_yolo26_end_to_end_head_needs_no_nms(write_recipe, cli, tmp_path):
    """YOLO26's one-to-one head gives [B, 300, 6] with its top-k in the graph: `vopt plan` says it needs no
    NMS, and it builds and validates as it is."""
    recipe = _recipe("yolo26-cpu", "cpu", id="yolo26n.yaml")
    recipe["export"] = {"opset": 17}
    path = write_recipe(recipe)
    plan = cli("plan", path)
    assert plan.exit_code == 0, plan.output
    assert "NMS-free end-to-end" in plan.output and "no NMS needed" in plan.output
    result = cli("build", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    steps = _steps(tmp_path / "out" / "yolo26-cpu" / "manifest.json")
    assert steps["load"]["report"]["notes"][-2].startswith("Detect head, 80 classes")
    outputs = json.loads((tmp_path / "out" / "yolo26-cpu" / "manifest.json").read_text())["artifact"]["io"]
    assert outputs["outputs"][0]["shape"][1:] == [300, 6]
    tm = steps["validate"]["report"]["task_metrics"]
    assert tm["scoring"] == "yolo head" and tm["reference_detections"] >= 20, tm
    assert tm["box_agreement"] >= 0.99, tm


def test_yolo11n_tensorrt_readiness_with_nms_in_the_graph(write_recipe, cli, tmp_path, monkeypatch):
    """What the tensorrt target checks before its builder (no GPU here): the exported graph with its NMS tail,
    which TensorRT's ONNX parser builds natively, and int32 labels and counts (TensorRT binds no int64). The
    tensorrt target cannot be built without TensorRT, so the graph comes from a cpu build whose export is
    told what the tensorrt target tells it (int32 outputs); the int64 graph is refused by the same check."""
    from vopt.core.artifact import Artifact, IOSpec
    from vopt.recipe.sections.model import InputSpec
    from vopt.registry import get_target

    target = get_target("tensorrt")
    assert target.int32_outputs
    monkeypatch.setattr(type(get_target("cpu")), "int32_outputs", True, raising=False)
    recipe = _recipe("yolo-trt", "cpu")
    recipe["compile"] = {"target": "cpu", "optimization": "basic"}  # the export's graph, no ORT contrib ops
    recipe["validate"] = None
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    dtypes = {o["name"]: o["dtype"] for o in manifest["artifact"]["io"]["outputs"]}
    assert dtypes["labels"] == dtypes["num_detections"] == "int32", dtypes
    art = Artifact(
        path=str(tmp_path / "out" / "yolo-trt" / manifest["artifact"]["file"]),
        format="onnx",
        io=IOSpec(**manifest["artifact"]["io"]),
    )
    report = target.check(
        art, target.Config(target="tensorrt", precision=["fp16"]), InputSpec(shape=[1, 3, 320, 320])
    )
    assert report["ready"], report["findings"]
    assert "NonMaxSuppression" in report["op_types"]


def test_yolo11n_coreml_is_a_pipeline_with_core_mls_nms(write_recipe, cli, tmp_path):
    """The coreml target converts the network to an ML Program and puts Core ML's own NonMaximumSuppression
    model after it; the package is read back here (predictions need macOS)."""
    pytest.importorskip("coremltools")
    res = cli("build", write_recipe(_recipe("yolo-coreml", "coreml")), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    manifest = json.loads(res.stdout)
    assert manifest["artifact"]["format"] == "coreml-mlpackage"
    compile_report = _steps(tmp_path / "out" / "yolo-coreml" / "manifest.json")["compile"]["report"]
    nms = json.dumps(compile_report)
    assert '"nonMaximumSuppression"' in nms and '"mlProgram"' in nms, compile_report
    assert '"iou_threshold": 0.7' in nms and '"confidence_threshold": 0.25' in nms, compile_report
