"""`quantize: {precision: fp16}` is data-driven for any model: the fp16 scheme calibrates (the fp32 model's
value ranges on the calibration data), keeps each node whose recorded range goes beyond fp16 in fp32, and its
report says which and why (vopt.quant.schemes.fp16, vopt.quant.overflow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.unit.test_diffusion_inputs import _overflowing_graph


def _scheme(tmp_path: Path, data: list[str] | None):
    from vopt.core.artifact import Preprocess
    from vopt.quant.calibration import CalibrationSet
    from vopt.quant.config import QuantizeConfig
    from vopt.quant.schemes.fp16 import Fp16Scheme
    from vopt.recipe.sections.quantize import CalibrationSection, CheckSection, ExcludeSection

    section = CalibrationSection(data=data, samples=3, batch=1)
    cfg = QuantizeConfig(
        target="cpu",
        scheme="fp16",
        precision="fp16",
        per_channel=True,
        activation_type=None,
        weight_type=None,
        calibration=section,
        exclude=ExcludeSection(),
        gates={},
        auto_fallback=False,
        max_float_fraction=0.25,
        fallback_step=1,
        require_speedup=None,
        check=CheckSection(),
        options={},
        preprocess={},
        input_shape=[1, 4],
        compile={},
    )
    work = tmp_path / "work"
    work.mkdir()
    return Fp16Scheme(cfg, work, family=None), CalibrationSet(section, Preprocess(), [1, 4])


@pytest.mark.parametrize("big", [True, False])
def test_fp16_keeps_the_nodes_its_calibration_data_overflows(tmp_path, big):
    import onnx
    import onnxruntime as ort

    model = tmp_path / "m.onnx"
    _overflowing_graph(model)  # y = (x * 3e4 + 1) / 3e4: beyond fp16 once |x| > 2.2
    x = np.array([[0.5, -3.0, 1.0, 4.0], [1.0, 0.1, -0.2, 2.5], [0.3, 0.2, 0.1, 0.0]], np.float32)
    data = tmp_path / "calib.npy"
    np.save(data, x if big else x / 100)  # the same model, data that stays within fp16 (|x * 3e4| < 1300)
    scheme, calib = _scheme(tmp_path, [str(data)])
    assert scheme.calibrate(model, calib, lambda n=1: None) == 3
    out = scheme.quantize(model, [], tmp_path / "fp16.onnx")
    kept = scheme.info["kept_fp32_nodes"]
    if big:  # the nodes that read or write the 1.2e5 product stay fp32, with the tensor and its range
        assert set(kept) == {"scale_up", "shift", "scale_down"}, kept
        assert kept["scale_up"] == "|scaled| reaches 1.2e+05 > 8188 (recorded)"
        assert scheme.info["overflow_nodes"] == 3 and "over 3 calibration batches" in scheme.info["ranges"]
    else:  # nothing overflows: every node is fp16
        assert kept == {} and scheme.info["overflow_nodes"] == 0
    graph = onnx.load(str(out)).graph
    relu = next(n for n in graph.node if n.name == "relu")
    assert relu.op_type == "Relu"  # converted, not blocked
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"x": x[:1] if big else x[:1] / 100})[0]
    ref = np.maximum((x[:1] if big else x[:1] / 100) + 1 / 3e4, 0)
    np.testing.assert_allclose(got, ref, rtol=2e-3, atol=1e-4)
