"""ORT's u8 x s8 CPU kernels: which layers can saturate without VNNI, and what `reduce_range` does about it.

A depthwise conv runs through MlasConvDepthwise (32-bit sums on every x86 CPU); every other conv through the
QGEMM, whose byte pairs sum to 16 bits without VNNI. So under reduce_range the `ort-qdq` scheme keeps all 8
bits on depthwise weights and gives 7 to the rest. These tests run the claim on this machine's kernels."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.integration.test_quant_build import _artifact, _build, _recipe, _step
from vopt.quant.schemes.ort_qdq import (
    depthwise_weights,
    gemm_weights,
    host_lacks_vnni,
    u8_weight_overrides,
)

CHANNELS = 16


def _conv_model(path, depthwise: bool) -> None:
    """One conv whose weights are all +1 and whose input is all near its range's top: as u8 x s8 products
    every pair is 255 x 127, twice what a 16-bit sum holds."""
    group, kernel = (CHANNELS, 3) if depthwise else (1, 1)
    weight = np.ones((CHANNELS, CHANNELS // group, kernel, kernel), np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv", group=group, pads=[kernel // 2] * 4)
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, CHANNELS, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CHANNELS, 8, 8])],
        [numpy_helper.from_array(weight, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _quantized(tmp_path, depthwise: bool, u8: bool = False):
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    src, dst = tmp_path / f"f{depthwise}.onnx", tmp_path / f"q{depthwise}{u8}.onnx"
    _conv_model(src, depthwise)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{"x": np.full((1, CHANNELS, 8, 8), v, np.float32)} for v in (0.0, 1.0)])

        def get_next(self):
            return next(self.items, None)

    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        # what the scheme writes under u8_weights
        extra_options={"TensorQuantOverrides": u8_weight_overrides(src, per_channel=True)} if u8 else {},
    )
    return dst


def _run(path, level) -> np.ndarray:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = level
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": np.full((1, CHANNELS, 8, 8), 1.0, np.float32)})[0]


@pytest.mark.parametrize("depthwise", [True, False], ids=["depthwise", "pointwise"])
def test_int8_fused_kernels_saturate_only_outside_depthwise(depthwise, tmp_path):
    import onnxruntime as ort

    quantized = _quantized(tmp_path, depthwise)
    weights = [i for i in onnx.load(str(quantized)).graph.initializer if i.name.endswith("_quantized")]
    assert weights and all(numpy_helper.to_array(w).max() == 127 for w in weights)  # full 8-bit range
    as_written = _run(quantized, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    fused = _run(quantized, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    assert as_written.max() > 0
    if depthwise or not host_lacks_vnni():
        np.testing.assert_allclose(fused, as_written, rtol=0.02)
    else:  # the case reduce_range exists for: on this CPU the 16-bit sums clip the conv's output
        assert fused.max() < 0.75 * as_written.max(), (fused.max(), as_written.max())


def test_depthwise_weights_names_only_depthwise_convs(tmp_path):
    _conv_model(tmp_path / "dw.onnx", depthwise=True)
    _conv_model(tmp_path / "pw.onnx", depthwise=False)
    assert depthwise_weights(tmp_path / "dw.onnx") == ["w"]
    assert depthwise_weights(tmp_path / "pw.onnx") == []
    assert gemm_weights(tmp_path / "dw.onnx") == {} and gemm_weights(tmp_path / "pw.onnx") == {"w": 0}


def test_u8_weights_run_the_saturating_pointwise_conv_exactly(tmp_path):
    """The pointwise conv that clips through the u8 x s8 kernels without VNNI: with the uint8 weights that
    `u8_weights` writes (zero point 128), ORT's fused U8U8 kernel computes what the QDQ file says, on this
    CPU whatever its flags."""
    import onnxruntime as ort

    quantized = _quantized(tmp_path, depthwise=False, u8=True)
    graph = onnx.load(str(quantized)).graph
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    (weight,) = [v for k, v in inits.items() if k.endswith("_quantized")]
    (zero,) = [v for k, v in inits.items() if k.startswith("w_zero_point")]
    assert weight.dtype == np.uint8 and weight.max() == 255 and (zero == 128).all()
    as_written = _run(quantized, ort.GraphOptimizationLevel.ORT_ENABLE_BASIC)
    fused = _run(quantized, ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED)
    assert as_written.max() > 0
    np.testing.assert_allclose(fused, as_written, rtol=0.02)
    # and it did run fused: ORT made a QLinearConv of the u8 x u8 pair
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    opts.optimized_model_filepath = str(tmp_path / "fused.onnx")
    ort.InferenceSession(str(quantized), opts, providers=["CPUExecutionProvider"])
    assert [n.op_type for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node].count("QLinearConv") == 1


@pytest.mark.slow
@pytest.mark.parametrize("full_range", [True, False])
def test_reduce_range_keeps_8_bit_depthwise_weights(full_range, write_recipe, cli, tmp_path):
    """The cpu scheme under reduce_range: 7-bit weights where the GEMM runs them, 8 bits on depthwise convs
    (unless `full_range_depthwise: false`)."""
    options = {"reduce_range": True, "full_range_depthwise": full_range}
    # default gates off: a random-weight MobileNet's int8 is far from its float model; only the weights matter
    q = {"calibration": {"samples": 8}, "check": {"samples": 4}, "options": options, "default_gates": False}
    validate = {"samples": 2, "default_gates": False}
    m = _build(cli, write_recipe(_recipe("mobilenet", quantize=q, validate=validate)), tmp_path / "o")
    step = _step(m, "quantize")
    graph = onnx.load(str(_artifact(step))).graph
    # the depthwise convs of the QDQ file: group == output channels, one input channel per group
    dq = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    inits = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    peaks = {"depthwise": [], "other": []}
    for n in graph.node:
        if n.op_type != "Conv" or n.input[1] not in dq:
            continue
        w = inits[dq[n.input[1]]]
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        kind = "depthwise" if group > 1 and w.shape[0] == group and w.shape[1] == 1 else "other"
        peaks[kind].append(int(np.abs(w.astype(np.int32)).max()))
    assert peaks["depthwise"] and peaks["other"]
    assert max(peaks["other"]) <= 64  # 7 bits
    if full_range:
        assert min(peaks["depthwise"]) > 64  # 8 bits: at least one weight per conv beyond 7
        said = step["report"]["scheme_info"]["full_range_weights"]
        assert said.startswith(f"{len(peaks['depthwise'])} depthwise")
    else:
        assert max(peaks["depthwise"]) <= 64 and "full_range_weights" not in step["report"]["scheme_info"]
