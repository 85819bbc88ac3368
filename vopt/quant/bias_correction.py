"""Bias correction for ONNX Runtime QDQ models: remove the mean output shift that weight rounding adds to each
Conv and Gemm (Nagel et al., "Data-Free Quantization", ICCV 2019; NNCF's fast bias correction does it
for OpenVINO, ONNX Runtime's quantizer has no such step).

A layer y = W x + b quantized to W' = DQ(Q(W)) computes W' x + b, whose expected output differs from the float
layer's by E[(W' - W) x] = (W' - W) E[x], linear in the mean input. With E[x] measured per position on the
calibration photos (the float model's input to the layer, averaged over images), the expected shift is the
layer itself applied to E[x] with the weight error as its weights (padding included), averaged over the
output positions: that is subtracted from the bias, which ONNX Runtime stores as int32 in units of
activation scale x weight scale."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

LAYERS = ("Conv", "Gemm")
INT32 = np.iinfo(np.int32)


def _attrs(node: Any) -> dict[str, Any]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def correctable_layers(float_model: Path) -> dict[str, str]:
    """Conv and Gemm nodes with a constant weight and bias in the float model: node name -> input tensor."""
    import onnx

    graph = onnx.load(str(float_model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    out = {}
    for node in graph.node:
        if node.op_type not in LAYERS or not node.name or len(node.input) < 3:
            continue
        if (
            node.input[1] in inits
            and node.input[2] in inits
            and _attrs(node).get("auto_pad", b"NOTSET")
            in (
                b"NOTSET",
                "NOTSET",
            )
        ):
            out[node.name] = node.input[0]
    return out


def input_means(float_model: Path, feeds: Iterable[dict[str, np.ndarray]], layers: dict[str, str]) -> dict:
    """Each layer's input averaged over the images (one array per layer: C x H x W for a conv, the features
    for a Gemm), from the float model run by ONNX Runtime with those inputs as extra outputs."""
    import onnx
    import onnxruntime as ort

    tensors = sorted(set(layers.values()))
    if not tensors:  # run([]) would return every graph output
        return {}
    # the graph alone, saved beside the float model so that its external weights (if any) resolve: no copy of
    # the weights in memory, and no 2 GB protobuf limit for a large model
    model = onnx.load(str(float_model), load_external_data=False)
    present = {o.name for o in model.graph.output}
    for name in tensors:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    augmented = float_model.with_name(f".{float_model.stem}.means.onnx")
    onnx.save(model, str(augmented))
    try:
        # ORT's full optimizations keep graph outputs as they are and run 6x faster than basic here (the
        # NCHWc kernels: Lite0 with 50 extra outputs, 36 ms against 230 ms an image on the 2-vCPU EPYC)
        session = ort.InferenceSession(str(augmented), providers=["CPUExecutionProvider"])
    finally:
        augmented.unlink(missing_ok=True)
    # per tensor: a conv's input is averaged over the batch, a Gemm's over its rows, which are the tokens of
    # every image in a transformer (197 rows an image for ViT-B/16), not the batch
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for feed in feeds:
        values = session.run(tensors, feed)
        for name, value in zip(tensors, values, strict=True):
            if name not in sums:
                sums[name], counts[name] = np.zeros(value.shape[1:], np.float64), 0
            sums[name] += value[0] if len(value) == 1 else value.sum(axis=0, dtype=np.float64)
            counts[name] += len(value)
    return {layer: (sums[t] / counts[t]).astype(np.float32) for layer, t in layers.items() if counts.get(t)}


def _dequantized(dq_of: dict[str, Any], inits: dict[str, Any], tensor: str) -> tuple[Any, Any, Any] | None:
    """(DequantizeLinear node, quantized initializer, its float value) for a tensor that a DQ makes from a
    constant; `dq_of` maps each DQ output to its node."""
    from onnx import numpy_helper

    node = dq_of.get(tensor)
    if node is None or node.input[0] not in inits:
        return None
    q = numpy_helper.to_array(inits[node.input[0]]).astype(np.float64)
    scale = numpy_helper.to_array(inits[node.input[1]]).astype(np.float64)
    zero = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64) if len(node.input) > 2 else 0.0
    axis = _attrs(node).get("axis", 1)
    if np.ndim(scale) == 1 and q.ndim > 1:  # per-channel: broadcast along the DQ's axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), np.reshape(zero, shape) if np.ndim(zero) else zero
    return node, inits[node.input[0]], (q - zero) * scale


def _shift(node: Any, error: np.ndarray, mean_in: np.ndarray) -> np.ndarray | None:
    """The expected output shift per output channel: the layer applied to its mean input with `error` as
    weights, averaged over output positions."""
    attrs = _attrs(node)
    if node.op_type == "Gemm":
        if attrs.get("transA", 0):
            return None
        w = error if attrs.get("transB", 0) else error.T  # (out, in)
        # Gemm adds beta x C: the bias moves by the shift over beta
        scale = attrs.get("alpha", 1.0) / attrs.get("beta", 1.0)
        return scale * (w @ mean_in.astype(np.float64).reshape(-1))
    if error.ndim != 4 or mean_in.ndim != 3:  # 2-D convs only (what vision models run)
        return None
    import torch
    import torch.nn.functional as F

    pads = attrs.get("pads", [0, 0, 0, 0])
    # float32 is precise enough: weight errors (about 1e-3 of the weights) times mean inputs, summed over at
    # most a few thousand terms
    x = torch.from_numpy(mean_in.astype(np.float32))[None]
    x = F.pad(x, (pads[1], pads[3], pads[0], pads[2]))
    y = F.conv2d(
        x,
        torch.from_numpy(error.astype(np.float32)),
        stride=tuple(attrs.get("strides", [1, 1])),
        dilation=tuple(attrs.get("dilations", [1, 1])),
        groups=attrs.get("group", 1),
    )
    return y[0].double().mean(dim=(1, 2)).numpy()


class BiasCorrector:
    """Corrects the biases of QDQ models quantized from one float model: the float weights are read once, and
    each layer's shift is kept by its quantized weights' bytes, so the fallback's and the search's many
    re-quantizations recompute only the layers whose weights changed."""

    def __init__(self, float_model: Path, means: dict[str, np.ndarray]):
        import onnx
        from onnx import numpy_helper

        graph = onnx.load(str(float_model)).graph
        inits = {i.name: i for i in graph.initializer}
        self.layers = {
            n.name: (n, numpy_helper.to_array(inits[n.input[1]]).astype(np.float64))
            for n in graph.node
            if n.name in means and n.input[1] in inits
        }
        self.means = means
        self._shifts: dict[tuple[str, bytes], np.ndarray | None] = {}

    def shift(self, name: str, quantized: Any, weight: np.ndarray) -> np.ndarray | None:
        import hashlib

        key = (name, hashlib.sha256(quantized.raw_data or quantized.SerializeToString()).digest())
        if key not in self._shifts:
            node, w_float = self.layers[name]
            same = w_float.shape == weight.shape
            self._shifts[key] = _shift(node, weight - w_float, self.means[name]) if same else None
        return self._shifts[key]

    def apply(self, qdq_model: Path) -> dict[str, Any]:
        """Rewrite the int32 biases of `qdq_model` in place; returns what changed (layers, the largest shift
        in bias units)."""
        import onnx
        from onnx import numpy_helper

        model = onnx.load(str(qdq_model))
        graph = model.graph
        inits = {i.name: i for i in graph.initializer}
        dq_of = {o: n for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        corrected, largest = 0, 0.0
        for node in graph.node:
            if node.name not in self.layers or node.op_type != self.layers[node.name][0].op_type:
                continue
            if len(node.input) < 3:
                continue
            weight = _dequantized(dq_of, inits, node.input[1])
            bias = _dequantized(dq_of, inits, node.input[2])
            if weight is None or bias is None:
                continue  # a layer left in float, or a bias kept float
            shift = self.shift(node.name, weight[1], weight[2])
            bias_node, bias_init, bias_value = bias
            if shift is None or shift.shape != bias_value.shape:
                continue
            scale = numpy_helper.to_array(inits[bias_node.input[1]]).astype(np.float64)
            units = np.round((bias_value - shift) / scale)
            q = np.clip(units, INT32.min, INT32.max).astype(np.int32)
            bias_init.CopyFrom(numpy_helper.from_array(q, bias_init.name))
            corrected += 1
            largest = max(largest, float(np.max(np.abs(shift / scale))))
        onnx.save(model, str(qdq_model))
        return {"layers": corrected, "largest_shift_units": round(largest, 1)}
