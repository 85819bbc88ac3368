"""Speed-aware mixed precision (vopt.quant.layer_speed): per-layer times of the float and the int8 model
from the runtime's own profiler, mapped back to the float ONNX layers, and the quantize option that keeps the
layers whose int8 kernel is slower in float. Nothing here asserts a speed: which layers are slower depends on
the CPU and its load; what is asserted is that every layer is measured on both sides and that the artifact,
the report and the metadata agree on what was kept float, and why."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from tests.integration.test_quant_build import _artifact, _build, _recipe, _step
from vopt.quant.layer_speed import LayerCost, layer_costs, slower_in_int8, weighted_layers


def _pair(tmp_path):
    """A small conv net (a depthwise conv, pointwise convs, a Gemm head) as float ONNX and its QDQ model."""
    import torch
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, padding=1, groups=16),
        torch.nn.ReLU(),
        torch.nn.Conv2d(16, 32, 1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(32, 10),
    ).eval()
    src, dst = tmp_path / "f.onnx", tmp_path / "q.onnx"
    torch.onnx.export(
        net, torch.zeros(1, 3, 32, 32), str(src), input_names=["x"], opset_version=17, dynamo=False
    )
    rng = np.random.default_rng(0)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.items = iter(
                [{"x": rng.standard_normal((1, 3, 32, 32)).astype(np.float32)} for _ in range(4)]
            )

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
    )
    return src, dst


@pytest.mark.parametrize("fmt", ["onnx", "openvino-ir"])
def test_every_layer_is_timed_in_int8_and_in_float(fmt, tmp_path):
    """ORT renames what it fuses (`<out>_nchwc`, `<node>_token_N`) and OpenVINO appends '/WithoutBiases': each
    profiled node still lands on its ONNX layer, on both sides."""
    if fmt == "openvino-ir":
        pytest.importorskip("openvino")
    src, qdq = _pair(tmp_path)
    quantized = qdq
    if fmt == "openvino-ir":  # the QDQ file read by OpenVINO: its int8 kernels, as an IR would run them
        import openvino as ov

        quantized = tmp_path / "ir"
        ov.save_model(ov.convert_model(str(qdq)), str(quantized / "model.xml"))
    layers = weighted_layers(src)
    assert len(layers) == 4  # three convs and the Gemm
    feeds = {"x": np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)}
    costs, info = layer_costs(src, quantized, fmt, feeds, threads=1, repeats=2, runs=3)
    assert info["status"] == "ok" and info["layers"] == 4
    assert info["layers_matched"] == len(costs) >= 3, info  # OpenVINO may fold the tiny head into one op
    assert [c.node for c in costs] == [n for n in layers if n in {c.node for c in costs}]  # graph order
    assert all(c.int8_ms > 0 and c.float_ms > 0 for c in costs)
    assert info["int8_total_ms"] > 0 and info["float_total_ms"] > 0


def test_slower_in_int8_leaves_out_what_the_profiler_cannot_tell_apart():
    costs = [LayerCost("a", 2.0, 1.0), LayerCost("b", 1.02, 1.0), LayerCost("c", 0.5, 1.0)]
    assert [c.node for c in slower_in_int8(costs)] == ["a"]
    assert costs[0].row() == {"node": "a", "int8_ms": 2.0, "float_ms": 1.0, "float_saves_ms": 1.0}


@pytest.mark.slow
def test_float_if_slower_reports_and_keeps_float_only_what_it_measured(write_recipe, cli, tmp_path):
    # default gates off: a random-weight MobileNet's int8 is far from its float model; the layers matter here
    q = {
        "calibration": {"samples": 8},
        "check": {"samples": 8, "rounds": 2},
        "options": {"float_if_slower": True},
        "default_gates": False,
    }
    validate = {"samples": 2, "default_gates": False}
    m = _build(cli, write_recipe(_recipe("mobilenet", quantize=q, validate=validate)), tmp_path / "o")
    step = _step(m, "quantize")
    rep = step["report"]
    speed = rep["speed_layers"]
    assert speed["status"] == "ok" and speed["layers_matched"] == speed["layers"] > 5
    assert {r["node"] for r in speed["table"]} and all(r["int8_ms"] > 0 for r in speed["table"])
    slow = set(speed["slower_in_int8"])
    assert slow == {r["node"] for r in speed["table"] if r["int8_ms"] > 1.05 * r["float_ms"]}
    proto = onnx.load(str(_artifact(step)))
    graph = proto.graph
    dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    # a layer kept float reads its weight as float (its input may still come through the Q/DQ pair that its
    # quantized producer's other consumers share)
    floats = {n.name for n in graph.node if n.name in slow and n.input[1] not in dq_out}
    meta = {p.key: p.value for p in proto.metadata_props}  # the model's, not the graph's
    if speed["kept"]:  # the timing said as fast or faster: those layers are float in the file, and said so
        assert floats == slow == set(rep["kept_float"]["for_speed"])
        assert set(json.loads(meta["vopt.quantize.float_nodes"])) >= slow
        assert f"{len(slow)} layer(s) kept float for speed" in rep["summary"]
        assert speed["speed_vs_all_int8"]["speedup"] >= 1.0
    else:  # nothing slower, or the whole artifact was not faster: all int8, with the reason
        assert speed["why"] and not floats and "kept_float" not in rep


@pytest.mark.slow
def test_float_if_slower_kept_layers_reach_file_metadata_and_summary(
    write_recipe, cli, tmp_path, monkeypatch
):
    """The branch the timing takes only on some CPUs, taken every time: the profiler's verdict (two layers
    slower in int8) and the interleaved timing (1.1x) are fixed, the rest is real. The two layers must be
    float in the written file, listed in its metadata and the report, and said in the summary."""
    import vopt.quant.layer_speed as layer_speed
    from vopt.stages.quantize import QuantizeStep

    picked: list[str] = []

    def two_slowest(costs):
        chosen = sorted(costs, key=lambda c: c.node)[:2]
        picked[:] = [c.node for c in chosen]
        return chosen

    monkeypatch.setattr(layer_speed, "slower_in_int8", two_slowest)
    timed = {"status": "ok", "speedup": 1.1}
    monkeypatch.setattr(QuantizeStep, "compare_speed", lambda self, a, b, title: timed)
    q = {
        "calibration": {"samples": 8},
        "check": {"samples": 8, "rounds": 2, "benchmark": False},
        "options": {"float_if_slower": True},
        "default_gates": False,
    }
    validate = {"samples": 2, "default_gates": False}
    m = _build(cli, write_recipe(_recipe("mobilenet", quantize=q, validate=validate)), tmp_path / "o")
    rep = _step(m, "quantize")["report"]
    assert rep["speed_layers"]["kept"] and len(picked) == 2
    assert rep["kept_float"] == {"for_speed": picked, "for_accuracy": []}
    proto = onnx.load(str(_artifact(_step(m, "quantize"))))
    dq_out = {o for n in proto.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    floats = {n.name for n in proto.graph.node if n.name in picked and n.input[1] not in dq_out}
    assert floats == set(picked)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert set(json.loads(meta["vopt.quantize.float_nodes"])) >= set(picked)
    assert "2 layer(s) kept float for speed" in rep["summary"]
