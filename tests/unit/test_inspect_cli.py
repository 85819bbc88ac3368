"""`vopt inspect` and `vopt doctor` on this machine."""

from __future__ import annotations

import json
import platform

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def _qdq_model(path):
    """A tiny QDQ MatMul with vopt metadata: int8 weights, fp32 scales."""
    w = numpy_helper.from_array(np.arange(32, dtype=np.int8).reshape(4, 8), "w_q")
    inits = [
        w,
        numpy_helper.from_array(np.array(0.05, np.float32), "s"),
        numpy_helper.from_array(np.array(0, np.int8), "zp"),
        numpy_helper.from_array(np.array(0.02, np.float32), "sx"),
        numpy_helper.from_array(np.array(128, np.uint8), "zx"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "sx", "zx"], ["xd"]),
        helper.make_node("DequantizeLinear", ["w_q", "s", "zp"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 8])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from vopt.targets.metadata import set_onnx_metadata

    set_onnx_metadata(proto, {"vopt.recipe": "tiny", "vopt.precision": "int8"})
    onnx.save(proto, path)
    return path


def test_inspect_onnx_and_ir(cli, tmp_path):
    path = _qdq_model(tmp_path / "m.onnx")
    info = json.loads(cli("inspect", path, "--json").stdout)
    assert info["format"] == "onnx" and info["detail"] == "opset 17"
    assert info["inputs"] == [{"name": "x", "shape": ["batch", 4], "dtype": "float32"}]
    assert info["op_types"] == {"DequantizeLinear": 2, "QuantizeLinear": 1, "MatMul": 1}
    assert info["precision_mix"] == {"fp32": 2, "int8": 2, "uint8": 1}
    assert info["quantization"] == {"Q": 1, "DQ": 2, "scheme": "QDQ"}
    assert info["metadata"] == {"vopt.recipe": "tiny", "vopt.precision": "int8"}
    assert info["size_bytes"] == path.stat().st_size
    human = cli("inspect", path)
    assert human.exit_code == 0 and "MatMul 1" in human.stdout and "vopt.recipe = tiny" in human.stdout

    import openvino as ov

    ov.save_model(ov.convert_model(str(path)), str(tmp_path / "ir" / "model.xml"))
    ir = json.loads(cli("inspect", tmp_path / "ir", "--json").stdout)
    assert ir["format"] == "openvino-ir" and ir["inputs"][0]["name"] == "x"
    assert ir["op_types"].get("MatMul") == 1 and ir["size_bytes"] > 0


def test_inspect_errors(cli, tmp_path):
    assert cli("inspect", tmp_path / "nope.onnx").exit_code == 2
    (tmp_path / "x.bin").write_bytes(b"\0")
    assert cli("inspect", tmp_path / "x.bin").exit_code == 2
    path = _qdq_model(tmp_path / "m.onnx")
    r = json.loads(cli("inspect", path, "--check", "tensorrt", "--json").stdout)["tensorrt_readiness"]
    # u8 activations with zero point 128: TensorRT wants symmetric s8; and no profile for the dynamic batch.
    assert sorted(f["check"] for f in r["findings"]) == ["qdq", "qdq", "shape"]
    assert cli("inspect", path, "--check", "openvino").exit_code == 2


def test_doctor_is_truthful_here(cli):
    import shutil

    data = json.loads(cli("doctor", "--json").stdout)
    targets = {t["target"]: t for t in data["targets"]}
    assert targets["cpu"]["state"] == "ready"
    assert targets["openvino"]["state"] == "ready" and "CPU" in targets["openvino"]["hardware_detail"]
    assert targets["qnn"]["available"] and "simulator" in targets["qnn"]["hardware_detail"]
    if shutil.which("nvidia-smi") is None:
        assert (
            targets["tensorrt"]["state"] == "unavailable"
            and "NVIDIA" in targets["tensorrt"]["hardware_detail"]
        )
    if platform.system() != "Darwin":
        assert targets["coreml"]["state"] == "build only" and "macOS" in targets["coreml"]["hardware_detail"]
    assert targets["tflite"]["state"] == "unavailable" and "vopt[tflite]" in targets["tflite"]["reason"]
    import os

    if not os.path.exists("/dev/kfd"):
        assert targets["rocm"]["state"] == "build only" and "ORT CPU" in targets["rocm"]["hardware_detail"]
    text = cli("doctor").stdout
    assert "vopt[openvino]" in text  # extras are printed, not eaten as markup
