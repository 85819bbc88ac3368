"""ort-qdq bias correction (vopt/quant/bias_correction.py): after ONNX Runtime's QDQ quantizer rounds the
weights, the corrected int32 biases cancel the mean output shift that rounding adds, on a strided conv with
padding, a depthwise conv with a 5x5 kernel, and a Gemm."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from vopt.quant.bias_correction import BiasCorrector, correctable_layers, input_means

LAYERS = {
    "strided conv": (lambda: torch.nn.Conv2d(8, 16, 3, stride=2, padding=1), (8, 20, 20)),
    "depthwise 5x5": (lambda: torch.nn.Conv2d(16, 16, 5, padding=2, groups=16), (16, 14, 14)),
    "gemm": (lambda: torch.nn.Linear(64, 32), (64,)),
}


class Reader(CalibrationDataReader):
    def __init__(self, xs: np.ndarray):
        self.items = iter([{"x": x[None]} for x in xs])

    def get_next(self):
        return next(self.items, None)


def mean_error(qdq: Path, xs: np.ndarray, float_out: np.ndarray) -> float:
    """The largest per-channel mean error of the layer's own output, before the output's QuantizeLinear: the
    output's rounding is a constant error on a near-constant channel, which no bias can remove."""
    model = onnx.load(str(qdq))
    raw = next(n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] != "x")
    model.graph.output.append(onnx.helper.make_tensor_value_info(raw, onnx.TensorProto.FLOAT, None))
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # the QDQ file as written
    session = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    out = np.concatenate([session.run([raw], {"x": x[None]})[0] for x in xs])
    axes = (0, 2, 3) if out.ndim == 4 else (0,)
    return float(np.abs((out - float_out).mean(axis=axes)).max())


@pytest.mark.parametrize("kind", list(LAYERS))
def test_corrected_biases_cancel_the_mean_shift_of_rounded_weights(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    make, shape = LAYERS[kind]
    layer = make().eval()
    with torch.no_grad():  # channels of very different sizes: per-tensor rounding hurts the small ones
        layer.weight.mul_(
            torch.logspace(-2, 0, layer.weight.shape[0]).reshape(-1, *[1] * (layer.weight.dim() - 1))
        )
    rng = np.random.default_rng(0)
    xs = (rng.random((48, *shape)) * 3 + 1).astype(np.float32)  # positive mean, as after a ReLU
    float_path, qdq_path = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    torch.onnx.export(layer, torch.from_numpy(xs[:1]), str(float_path), input_names=["x"], dynamo=False)
    with torch.no_grad():
        float_out = layer(torch.from_numpy(xs)).numpy()
    quantize_static(
        str(float_path),
        str(qdq_path),
        Reader(xs[:32]),
        quant_format=QuantFormat.QDQ,
        per_channel=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
    )
    before = mean_error(qdq_path, xs[32:], float_out[32:])

    layers = correctable_layers(float_path)
    assert len(layers) == 1
    means = input_means(float_path, ({"x": x[None]} for x in xs[:32]), layers)
    done = BiasCorrector(float_path, means).apply(qdq_path)
    after = mean_error(qdq_path, xs[32:], float_out[32:])

    assert done["layers"] == 1 and done["largest_shift_units"] > 1
    assert before > 1e-3
    assert after < 0.35 * before, (before, after)
    onnx.checker.check_model(onnx.load(str(qdq_path)))


def test_a_model_without_correctable_layers_measures_nothing(tmp_path: Path) -> None:
    """A Conv without a name (or without a bias) is not corrected, and the means pass runs nothing for it."""
    layer = torch.nn.Conv2d(3, 4, 3, bias=False).eval()
    path = tmp_path / "float.onnx"
    torch.onnx.export(layer, torch.zeros(1, 3, 8, 8), str(path), input_names=["x"], dynamo=False)
    layers = correctable_layers(path)
    assert layers == {}
    assert input_means(path, [{"x": np.ones((1, 3, 8, 8), np.float32)}], layers) == {}


class ConvThenTokens(torch.nn.Module):
    """A conv, then its positions as rows of a Gemm (as a ViT's linear layers see 197 tokens an image)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(4, 8, 3, padding=1)
        self.fc = torch.nn.Linear(8, 6)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.conv(x).flatten(2).transpose(1, 2).reshape(-1, 8)
        return self.fc(rows)


def test_means_count_a_gemm_rows_and_a_conv_batch_apart(tmp_path: Path) -> None:
    """Each input is averaged over its own leading dim: the conv's over images, the Gemm's over all rows of
    all images. One shared count (the first tensor's) made ViT-B/16's shifts far too large (centered cosine
    0.04)."""
    model = ConvThenTokens().eval()
    path = tmp_path / "float.onnx"
    xs = (np.random.default_rng(0).random((5, 1, 4, 6, 6)) + 0.5).astype(np.float32)
    torch.onnx.export(model, torch.from_numpy(xs[0]), str(path), input_names=["x"], dynamo=False)
    layers = correctable_layers(path)
    kinds = {n.name: n.op_type for n in onnx.load(str(path)).graph.node}
    assert sorted(kinds[name] for name in layers) == ["Conv", "Gemm"]
    means = input_means(path, ({"x": x} for x in xs), layers)
    with torch.no_grad():
        rows = torch.cat(
            [model.conv(torch.from_numpy(x)).flatten(2).transpose(1, 2).reshape(-1, 8) for x in xs]
        )
    for name, kind in ((n, kinds[n]) for n in layers):
        want = xs[:, 0].mean(axis=0) if kind == "Conv" else rows.numpy().mean(axis=0)
        np.testing.assert_allclose(means[name], want, rtol=1e-4, atol=1e-5)
