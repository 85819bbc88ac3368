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
