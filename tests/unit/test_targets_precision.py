"""Target contract pieces that need no build: the precision an artifact is labelled with, the input formats
each target's compile takes, the compile cache key's machine facts, and cheap module imports."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from vopt.core.artifact import Artifact
from vopt.core.context import Context
from vopt.errors import BuildError
from vopt.registry import TARGETS, get_target
from vopt.targets.metadata import effective_precision, qdq_precision


def _qdq_model(path, zp_dtype=np.uint8):
    """x -> QuantizeLinear -> DequantizeLinear -> Relu -> y, with the zero point type given."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(0, zp_dtype), "zp"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["d"]),
        helper.make_node("Relu", ["d"], ["y"]),
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 21)]
    )
    proto.ir_version = 10
    onnx.save(proto, path)
    return proto


def _art(path="m.onnx", fmt="onnx", quantized=None):
    meta = {"quantized": {"scheme": "ort-qdq", "precision": quantized}} if quantized else {}
    return Artifact(path=str(path), format=fmt, meta=meta)


def test_effective_precision_prefers_what_the_artifact_is():
    assert effective_precision(_art(), "fp32") == "fp32"
    assert effective_precision(_art(quantized="int8"), "fp32") == "int8"  # cpu: was labelled fp32
    assert effective_precision(_art(quantized="int16"), "int8") == "int16"  # qnn: was labelled int8
    assert effective_precision(_art(quantized="int8"), "fp16") == "int8"  # webgpu: was labelled fp16
    # QDQ seen in the graph, no quantize meta
    assert effective_precision(_art(), "fp32", built="int8") == "int8"
    # TensorRT: the flags already name the quantized precision, and they are the truth about the engine
    assert effective_precision(_art(quantized="int8"), "fp16+int8") == "fp16+int8"
    for art, setting in ((_art(quantized="int8"), "fp16"), (_art(), "fp16+int8")):
        once = effective_precision(art, setting)
        assert effective_precision(art, setting, built=once) == once


def test_qdq_precision_reads_the_zero_point_types(tmp_path):
    assert qdq_precision(_qdq_model(tmp_path / "u8.onnx", np.uint8)) == "int8"
    assert qdq_precision(_qdq_model(tmp_path / "u16.onnx", np.uint16)) == "int16"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    plain = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y]))
    assert qdq_precision(plain) is None


def _ctx(tmp_path, target):
    """What the compile stage hands a target: the build's name and the model input, from its own config."""
    from vopt.recipe.sections.model import InputSpec

    return Context(
        target=target, workdir=tmp_path, build_name="t", model_input=InputSpec(name="x", shape=[1, 3, 8, 8])
    )


@pytest.mark.parametrize("name", [t for t in TARGETS if t != "tflite"])  # tflite compiles nothing (exit 4)
def test_every_target_refuses_a_format_it_cannot_take(tmp_path, name):
    target = get_target(name)
    assert target.input_formats and set(target.input_formats) <= {"onnx", "openvino-ir", "torch-module"}
    wrong = next(f for f in ("openvino-ir", "tensorrt-engine") if f not in target.input_formats)
    with pytest.raises(BuildError, match=rf"\[compile\] .*{name}.* not {wrong}"):
        target.compile(_art(tmp_path / "model", wrong), target.Config(), _ctx(tmp_path, target))
    if name == "openvino":
        assert target.input_formats == ("onnx", "openvino-ir")


def test_cpu_labels_an_int8_qdq_model_int8_whatever_the_compile_setting(tmp_path):
    _qdq_model(tmp_path / "q.onnx")
    target = get_target("cpu")
    out = target.compile(_art(tmp_path / "q.onnx"), target.Config(), _ctx(tmp_path, target))
    assert out.meta["precision"] == "int8"
    props = {p.key: p.value for p in onnx.load(out.path).metadata_props}
    assert props["vopt.precision"] == "int8"


def test_web_labels_the_quantize_stage_qdq_int8_not_fp16(tmp_path):
    _qdq_model(tmp_path / "q.onnx")
    target = get_target("webgpu")
    (tmp_path / "w").mkdir()
    ctx = _ctx(tmp_path / "w", target)
    out = target.compile(_art(tmp_path / "q.onnx", quantized="int8"), target.Config(), ctx)  # default fp16
    props = {p.key: p.value for p in onnx.load(out.path).metadata_props}
    assert props["vopt.precision"] == "int8" and out.meta["precision"] == "int8"
    assert ctx.report["precision"] == "int8" and "kept as it is" in ctx.report["warnings"][0]
    assert {"onnxruntime", "onnxsim"} <= set(target.tool_versions())  # web compile runs onnxsim: cache key
    assert {"onnxruntime", "onnxsim"} <= set(get_target("webnn").tool_versions())


def test_tensorrt_metadata_records_the_int8_flag_added_for_qdq(tmp_path):
    _qdq_model(tmp_path / "q.onnx", np.int8)
    target = get_target("tensorrt")
    cfg = target.Config(precision=["fp16"], profiles={"x": [[1, 4]] * 3})
    report = target.check(_art(tmp_path / "q.onnx"), cfg, None)
    assert report["flags"] == ["fp16", "int8"] and report["flags_added"] == ["int8"]
    meta = target.metadata(_art(tmp_path / "q.onnx"), report["flags"], "t")
    assert meta["vopt.precision"] == "fp16+int8"
    json.dumps(meta)


def _fake_smi(tmp_path, cap):
    d = tmp_path / f"smi{cap}"
    d.mkdir()
    smi = d / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\necho {cap}\n")
    smi.chmod(0o755)
    return d


def test_tensorrt_compile_key_includes_the_gpu_architecture(tmp_path, monkeypatch):
    from vopt.stages.compile import CompileConfig, CompileStage

    config = CompileConfig(settings={"target": "tensorrt", "precision": "fp16"}, recipe_name="t")
    keys = {}
    for cap in ("8.0", "9.0"):
        monkeypatch.setenv("PATH", f"{_fake_smi(tmp_path, cap)}{os.pathsep}{os.environ['PATH']}")
        keys[cap] = CompileStage.fingerprint(config)
    assert keys["8.0"] == {"target": {"compute_capability": "sm80"}}
    assert keys["9.0"] == {"target": {"compute_capability": "sm90"}}
    # other targets add nothing: their cache keys stay as they were
    assert CompileStage.fingerprint(CompileConfig(settings={"target": "cpu"}, recipe_name="t")) == {}


def test_target_base_does_not_import_numpy():
    code = (
        "import sys, vopt.targets.base, vopt.targets.cpu, vopt.targets.tensorrt; "
        "vopt.targets.tensorrt.TensorRtTarget().key_material(); print('numpy' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    out = run.stdout.strip()
    assert out == "False"


def test_report_manifest_and_engine_agree_on_tensorrt_fp16_int8(tmp_path, write_recipe):
    """fp16 flags on the quantize stage's int8 Q/DQ build an fp16+int8 engine: its metadata file, the manifest
    and the report all say so (the report used to say the quantize step's int8)."""
    from tests.conftest import tiny_model
    from vopt.core.results import StepRecord
    from vopt.pipeline.manifest import make_manifest
    from vopt.recipe.resolve import load_recipe
    from vopt.report import data

    _qdq_model(tmp_path / "q.onnx", np.int8)
    target = get_target("tensorrt")
    cfg = target.Config(precision=["fp16"], profiles={"x": [[1, 4]] * 3})
    quantized = _art(tmp_path / "q.onnx", quantized="int8")
    meta = target.metadata(quantized, target.check(quantized, cfg, None)["flags"], "t")
    engine = quantized.derive(tmp_path / "q.onnx", meta={"precision": meta["vopt.precision"]})  # as compile()
    loaded = load_recipe(
        write_recipe(
            {
                "name": "t",
                "model": tiny_model("resnet"),
                "quantize": {"precision": "int8"},
                "compile": {"target": "tensorrt", "precision": ["fp16"]},
            }
        )
    )
    records = [
        StepRecord(
            stage="quantize",
            key="k",
            cached=False,
            seconds=0.0,
            input_sha256=None,
            output_sha256=None,
            config={},
            report={"precision": "int8"},
        )
    ]
    manifest = make_manifest(loaded, target, records, engine, []).to_json()
    assert data.precision(manifest) == manifest["precision"] == meta["vopt.precision"] == "fp16+int8"
    assert data.precision({**manifest, "artifact": None, "precision": None}) == "-"  # no artifact, no label
