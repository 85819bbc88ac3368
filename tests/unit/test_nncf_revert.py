"""vopt.quant.schemes.nncf_revert on a transformer block that SmoothQuant rewrites: a linear layer returned to
float keeps the smoothed weights that match the activation scale SmoothQuant left in the graph."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("nncf")
torch = pytest.importorskip("torch")


class _Block(torch.nn.Module):
    """LayerNorm feeding two linear layers (SmoothQuant smooths them as one group), with a few input
    channels 30x larger than the rest: the per-channel scales SmoothQuant computes are far from 1."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.norm = torch.nn.LayerNorm(64)
        with torch.no_grad():
            self.norm.weight[:4] = 30.0
        self.query = torch.nn.Linear(64, 64)
        self.key = torch.nn.Linear(64, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(x)
        return torch.cat([self.query(h), self.key(h)], dim=-1)


def _centered_cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = (v.ravel() - v.mean() for v in (a, b))
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_reverted_layer_keeps_smooth_quants_weights(tmp_path):
    import nncf
    import openvino as ov
    from nncf.openvino.quantization.backend_parameters import BackendParameters
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    from vopt.quant.schemes.nncf_revert import Reverter

    block = _Block().eval()
    x = torch.randn(1, 16, 64)
    path = tmp_path / "block.onnx"
    torch.onnx.export(block, (x,), str(path), opset_version=17, dynamo=False)
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((1, 16, 64)).astype(np.float32) for _ in range(16)]
    initial = ov.convert_model(str(path))
    advanced = AdvancedQuantizationParameters(backend_params={BackendParameters.COMPRESS_WEIGHTS: False})
    quantized = nncf.quantize(  # one conversion: auto-named ops differ between two
        initial,
        nncf.Dataset(data),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=16,
        advanced_parameters=advanced,
    )
    smoothed = [op for op in quantized.get_ops() if "smooth_quant" in op.get_friendly_name().lower()]
    assert smoothed, "SmoothQuant did not rewrite the block: the test shows nothing"

    query = next(
        op.get_friendly_name()
        for op in initial.get_ops()
        if op.get_type_name() == "MatMul" and "query" in op.get_friendly_name()
    )
    reverted, ops = Reverter(initial, quantized).revert([query])
    assert any(op.startswith(query) for op in ops)

    core = ov.Core()
    probe = rng.standard_normal((1, 16, 64)).astype(np.float32)
    want = block(torch.from_numpy(probe)).detach().numpy()
    got = {
        name: core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(probe)[0]
        for name, model in (("int8", quantized), ("reverted", reverted))
    }
    # the query half in float is exact up to the key half's int8 error; restoring the unsmoothed weights
    # under SmoothQuant's scale made it wrong by the scales themselves
    query_half = slice(0, 64)
    assert _centered_cosine(want[..., query_half], got["reverted"][..., query_half]) > 0.9999
    assert _centered_cosine(want, got["reverted"]) >= _centered_cosine(want, got["int8"]) - 1e-4


def test_the_last_layer_reverts_by_its_onnx_name(tmp_path):
    """OpenVINO names the op that computes a graph output after the output ('logits'): a bias-free last MatMul
    is that op, and reverting '/3/MatMul' returned nothing to float before the name rule was shared."""
    import nncf
    import openvino as ov
    from nncf.openvino.quantization.backend_parameters import BackendParameters
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    from vopt.quant.schemes.nncf_revert import Reverter
    from vopt.runtimes.openvino_names import onnx_producers

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(48, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10, bias=False)
    ).eval()
    path = tmp_path / "mlp.onnx"
    torch.onnx.export(
        net, (torch.randn(1, 3, 4, 4),), str(path), opset_version=17, dynamo=False, output_names=["logits"]
    )
    initial = ov.convert_model(str(path))
    assert "logits" in {op.get_friendly_name() for op in initial.get_ops()}, "OpenVINO's naming changed"
    rng = np.random.default_rng(0)
    data = [rng.standard_normal((1, 3, 4, 4)).astype(np.float32) for _ in range(8)]
    advanced = AdvancedQuantizationParameters(backend_params={BackendParameters.COMPRESS_WEIGHTS: False})
    quantized = nncf.quantize(initial, nncf.Dataset(data), subset_size=8, advanced_parameters=advanced)

    reverted, ops = Reverter(initial, quantized, onnx_producers(path)).revert(["/3/MatMul"])
    assert ops == ["logits"]
    probe = data[0]
    want = net(torch.from_numpy(probe)).detach().numpy()
    core = ov.Core()
    outs = {
        name: core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})(probe)[0]
        for name, model in (("int8", quantized), ("reverted", reverted))
    }
    # the last layer in float: closer to PyTorch than the all-int8 model
    assert np.abs(outs["reverted"] - want).max() < np.abs(outs["int8"] - want).max()


def test_onnx_layer_names():
    from vopt.runtimes.openvino_names import onnx_layer

    layers = {"/conv/Conv", "/head/MatMul"}
    producers = {"logits": "/head/MatMul", "/conv/Conv_output_0": "/conv/Conv"}
    assert onnx_layer("/conv/Conv/WithoutBiases", layers, producers) == "/conv/Conv"
    assert onnx_layer("/conv/Conv", layers, producers) == "/conv/Conv"
    assert onnx_layer("logits", layers, producers) == "/head/MatMul"
    assert onnx_layer("/conv/Conv2/WithoutBiases", layers, producers) is None
    assert onnx_layer("Reshape_31", layers, producers) is None
