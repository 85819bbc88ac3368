"""tensorrt: the readiness check runs on CPU against real ONNX exports and crafted bad graphs; the engine
build runs only where TensorRT and an NVIDIA GPU exist, and otherwise skips with the reason."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import tiny_model
from vopt.runtimes.tensorrt import engine_name, profiles_from_dynamic, readiness


def _model(nodes, inputs, outputs, inits=(), opset=17, path=None):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    proto = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("com.microsoft", 1)]
    )
    onnx.save(proto, path)
    return path


def _checks(report, level="error"):
    return sorted(f["check"] for f in report["findings"] if f["level"] == level)


def test_readiness_flags_each_problem(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    ok = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], path=tmp_path / "ok.onnx")
    assert readiness(ok)["ready"] and readiness(ok)["findings"] == []

    old = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], opset=21, path=tmp_path / "opset.onnx")
    assert _checks(readiness(old)) == ["opset"]

    custom = _model(
        [helper.make_node("FusedConv", ["x"], ["y"], domain="com.microsoft", name="fc0")],
        [x],
        [y],
        path=tmp_path / "custom.onnx",
    )
    r = readiness(custom)
    assert (
        _checks(r) == ["op"]
        and r["findings"][0]["nodes"] == ["fc0"]
        and "com.microsoft::FusedConv" in r["findings"][0]["message"]
    )

    # u8 asymmetric Q/DQ (what ORT's CPU and QNN schemes make): TensorRT wants s8 with zero point 0.
    q = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(128, np.uint8), "zp"),
    ]
    qdq = _model(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"], name="q0"),
            helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"], name="dq0"),
        ],
        [x],
        [y],
        q,
        path=tmp_path / "u8.onnx",
    )
    r = readiness(qdq)
    assert _checks(r) == ["qdq", "qdq"]
    assert any("uint8" in f["message"] for f in r["findings"]) and any(
        "zero point" in f["message"] for f in r["findings"]
    )
    s8 = [
        numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
    ]
    sym = _model(
        [
            helper.make_node("QuantizeLinear", ["x", "s", "zp"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "zp"], ["y"]),
        ],
        [x],
        [y],
        s8,
        path=tmp_path / "s8.onnx",
    )
    assert readiness(sym)["ready"]

    # int64 at the boundary (argmax indices) and a dynamic batch without a profile.
    xi = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    yi = helper.make_tensor_value_info("y", TensorProto.INT64, ["batch"])
    argmax = _model(
        [helper.make_node("ArgMax", ["x"], ["y"], axis=1, keepdims=0)], [xi], [yi], path=tmp_path / "i64.onnx"
    )
    assert _checks(readiness(argmax)) == ["int64", "shape"]
    fixed = readiness(argmax, {"x": [[1, 4], [4, 4], [8, 4]]})
    assert _checks(fixed) == ["int64"]


def test_profiles_and_engine_name():
    assert profiles_from_dynamic(
        "pixel_values", [1, 3, 224, 224], {"batch": [1, 8, 32], "height": [160, 224, 320]}
    ) == {"pixel_values": [[1, 3, 160, 224], [8, 3, 224, 224], [32, 3, 320, 224]]}
    assert profiles_from_dynamic("x", [1, 3, 8, 8], None) == {}
    assert engine_name("10.7.0", "sm89") == "model.trt10.7.0.sm89.engine"


@pytest.mark.slow
def test_real_export_is_trt_ready_and_build_skips_with_reason(write_recipe, cli, tmp_path):
    """A tiny ResNet export passes the check (through the target, as compile runs it); without
    TensorRT/GPU `vopt build` stops at once with exit 4 naming what is missing; the check itself runs
    through the target."""
    recipe = write_recipe(
        {
            "name": "trt",
            "model": tiny_model("resnet", input={"shape": [1, 3, 64, 64], "dynamic": {"batch": [1, 4, 8]}}),
            "compile": {"target": "tensorrt", "precision": ["fp16"]},
            "export": {"parity_samples": 2},
        }
    )
    from vopt.registry import get_target

    target = get_target("tensorrt")
    ok, why = target.available()
    result = cli("build", recipe, "--out", tmp_path / "out")
    if not ok:
        assert result.exit_code == 4, result.output
        assert "tensorrt" in result.output.lower() and ("nvidia" in result.output.lower())
    else:
        assert result.exit_code == 0, result.output

    # The pre-build check on the real export, with the recipe's profile.
    from vopt.core.cache import Cache
    from vopt.core.progress import QuietReporter
    from vopt.pipeline.plan import key_for, make_plan
    from vopt.pipeline.runner import _Env, _run_step
    from vopt.recipe.resolve import load_recipe

    rec = load_recipe(recipe).recipe
    steps, _ = make_plan(rec)
    env = _Env(rec, target, Cache(), QuietReporter(), use_cache=True, debug=False)
    art = None
    for step in [s for s in steps if s.name in ("load", "export")]:
        art, _, _ = _run_step(step, art, key_for(step, art.sha256 if art else None, target), env)
    report = target.check(art, target.Config(target="tensorrt", precision=["fp16", "int8"]), rec.model.input)
    assert report["ready"], report["findings"]
    assert report["profiles"] == {"pixel_values": [[1, 3, 64, 64], [4, 3, 64, 64], [8, 3, 64, 64]]}
    assert {"Conv", "Gemm"} <= set(report["op_types"])
    # int8 asked for, but the export has no Q/DQ: said before any GPU is involved.
    assert any(f["check"] == "qdq" and f["level"] == "warning" for f in report["findings"])

    shown = json.loads(cli("inspect", art.path, "--check", "tensorrt", "--json").stdout)
    assert (
        shown["tensorrt_readiness"]["errors"] == 1
    )  # the CLI has no recipe: dynamic batch without a profile
    assert shown["tensorrt_readiness"]["findings"][0]["check"] == "shape"


def test_engine_build(tmp_path):
    from vopt.registry import get_target

    ok, why = get_target("tensorrt").available()
    if not ok:
        pytest.skip(f"TensorRT engine build needs TensorRT and an NVIDIA GPU: {why}")
    from vopt.runtimes.tensorrt import build_engine, gpu_compute_capability, runner

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])
    path = _model([helper.make_node("Relu", ["x"], ["y"])], [x], [y], path=tmp_path / "relu.onnx")
    import tensorrt as trt

    engine = tmp_path / engine_name(trt.__version__, gpu_compute_capability())
    cache = tmp_path / "timing.cache"
    build_engine(
        path,
        engine,
        flags=["fp16"],
        workspace_gb=1,
        profiles={"x": [[1, 8], [2, 8], [4, 8]]},
        timing_cache=cache,
    )
    assert engine.stat().st_size > 0 and cache.stat().st_size > 0
    feeds = {"x": np.linspace(-1, 1, 16, dtype=np.float32).reshape(2, 8)}
    np.testing.assert_allclose(runner(engine)(feeds)["y"], np.maximum(feeds["x"], 0), atol=1e-3)
