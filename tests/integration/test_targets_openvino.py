"""openvino: full `vopt build` runs for tiny ResNet and ViT, fp32 from ONNX and int8 from NNCF's IR."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model

pytest.importorskip("openvino")


def _build(write_recipe, cli, tmp_path, family: str, precision: str):
    recipe = {
        "name": f"ov-{family}-{precision}",
        "model": tiny_model(family),
        "export": {"parity_samples": 2},
        "compile": {"target": "openvino", "precision": precision},
        "validate": {"samples": 8, "batch": 4},
    }
    if precision == "int8":
        recipe["quantize"] = {
            "precision": "int8",
            "calibration": {"samples": 16},
            "check": {"samples": 4, "benchmark": False},
        }
    result = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["resnet", "vit"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_openvino_build_runs_on_openvino(write_recipe, cli, tmp_path, family, precision):
    manifest = _build(write_recipe, cli, tmp_path, family, precision)
    stages = [s["stage"] for s in manifest["steps"]]
    assert stages[-2:] == ["compile", "validate"]
    compile_report = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]
    v = manifest["validation"]
    assert v["status"] == "ok" and v["runtime"] == "openvino-cpu"
    info = v["runtime_info"]
    # Accuracy checks run in f32, not the bf16 this CPU would pick by itself, and the report says so.
    assert info["inference_precision"] == "f32"
    assert info["input_format"] == "openvino-ir"
    prec = info["exec_graph"]["runtime_precision"]
    assert "bf16" not in prec
    logits = v["metrics"]["logits"]
    if precision == "fp32":
        assert compile_report["source"] == "onnx" and compile_report["fake_quantize"] == 0
        assert "i8" not in prec and max(prec, key=prec.get) == "f32"  # u8 here is boolean masks, not int8
        assert logits["cosine"] > 0.9999 and logits["centered_cosine"] > 0.999
    else:
        # NNCF's int8 IR came in from the quantize stage and really runs int8 kernels.
        assert compile_report["source"] == "openvino-ir" and compile_report["fake_quantize"] > 0
        assert prec.get("u8", 0) + prec.get("i8", 0) > 0
        assert 0.8 < logits["centered_cosine"] < 0.9999
    print(
        f"{family} {precision}: cosine {logits['cosine']:.6f}, centered {logits['centered_cosine']:.4f}, "
        f"exec {prec}"
    )

    ir = tmp_path / "out" / manifest["recipe"]["name"] / "openvino_model"
    assert (ir / "model.xml").is_file() and (ir / "model.bin").is_file()
    shown = json.loads(cli("inspect", ir, "--json").stdout)
    assert shown["format"] == "openvino-ir"
    assert shown["metadata"]["vopt.target"] == "openvino" and shown["metadata"]["vopt.precision"] == precision
    assert json.loads(shown["metadata"]["vopt.preprocess"])["size"] == [64, 64]
    assert (shown["quantization"].get("FakeQuantize", 0) > 0) == (precision == "int8")


def test_openvino_bf16_is_reported_when_asked(tmp_path):
    """precision bf16 lets the CPU plugin run bf16, and the runner says which precision ran."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    w = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])],
        [onnx.numpy_helper.from_array(w, "w")],
    )
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    from vopt.runtimes.openvino import runner

    x = np.random.default_rng(1).standard_normal((4, 16)).astype(np.float32)
    f32 = runner(path, precision="fp32")
    assert f32.info["inference_precision"] == "f32" and f32.info["input_format"] == "onnx"
    np.testing.assert_allclose(f32({"x": x})["y"], x @ w, rtol=1e-5, atol=1e-5)
    import openvino as ov

    bf16_capable = "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    bf = runner(path, precision="bf16")
    assert bf.info["inference_precision"] == ("bf16" if bf16_capable else "f32")
    if bf16_capable:  # bf16 has 8 mantissa bits: visibly less exact than f32
        assert np.abs(bf({"x": x})["y"] - x @ w).max() > 1e-4


def test_openvino_conversion_failure_names_the_op(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from vopt.core.artifact import Artifact
    from vopt.core.context import Context
    from vopt.errors import BuildError
    from vopt.registry import get_target

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Frobnicate", ["r"], ["y"], domain="acme"),
    ]
    proto = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]),
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("acme", 1)],
    )
    onnx.save(proto, tmp_path / "bad.onnx")

    target = get_target("openvino")
    with pytest.raises(
        BuildError, match=r"\[compile\] OpenVINO rejected the graph: .*conversion rule .*acme.Frobnicate"
    ) as err:
        target.compile(
            Artifact(path=str(tmp_path / "bad.onnx"), format="onnx"),
            target.Config(),
            Context(target=target, workdir=tmp_path, build_name="bad"),
        )
    assert err.value.lines[0] == "1 node(s) cause it: y (acme.Frobnicate)"  # unnamed: named by its output


@pytest.mark.slow
def test_int8_speed_check_times_at_default_hints(write_recipe, cli, tmp_path):
    """'Did INT8 pay' compares what a deployment runs: no f32 pin (the accuracy runner's), and it says which
    ran."""
    import openvino as ov

    recipe = {
        "name": "ov-speed",
        "model": tiny_model("resnet"),
        "export": {"parity_samples": 2},
        "compile": {"target": "openvino"},
        "validate": {"samples": 4},
        "quantize": {
            "precision": "int8",
            "calibration": {"samples": 8, "batch": 4},
            "check": {"samples": 4, "benchmark": True, "rounds": 2},
        },
    }
    result = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    speed = next(s for s in m["steps"] if s["stage"] == "quantize")["report"]["speed"]
    default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").get_type_name()  # 'bf16' on this CPU
    assert speed["status"] in ("ok", "inconclusive") and speed["precision_hint"] == "default"
    # bf16 on this CPU (avx512_bf16), not the f32 of accuracy checks
    assert speed["inference_precision"] == default
    assert "default precision hint" in speed["runtime"] and speed["float_runtime"] == speed["runtime"]
    # validation still pins f32 for accuracy
    assert m["validation"]["runtime_info"]["inference_precision"] == "f32"
    assert m["artifact"]["meta"]["precision"] == "int8"
    # the hints the IR carries (rt_info runtime_options) for vopt's runners and for a user's compile_model
    assert m["artifact"]["meta"]["runtime"] == {
        "name": "openvino",
        "settings": {"PERFORMANCE_HINT": "LATENCY"},
    }
