"""quantize.search on a real model: EfficientNet-Lite0 with Google's weights, real labelled photos. The
search ranks layers on check photos (never calibration photos) and must lower the top-1 flips on *other*
photos (held out) against plain int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from benchmarks import _models as M

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    why = M.why_unavailable()
    if why:
        pytest.skip(why)
    from onnxruntime.quantization import quant_pre_process

    from vopt.pipeline.artifact import Preprocess
    from vopt.quant.calibration import CalibrationSet
    from vopt.quant.config import QuantizeConfig
    from vopt.quant.schemes.ort_qdq import OrtQdqScheme
    from vopt.recipe.sections.quantize import CalibrationSection, CheckSection, ExcludeSection

    work = tmp_path_factory.mktemp("effl0")
    parts = M.split(M.samples_dir(), work / "split")
    pre = work / "pre.onnx"
    quant_pre_process(str(M.export_onnx(work / "effl0.onnx")), str(pre))
    cal = CalibrationSection(data=str(parts["calibration"]), samples=32, batch=8)
    cfg = QuantizeConfig(
        target="cpu",
        scheme="ort-qdq",
        precision="int8",
        per_channel=True,
        activation_type="uint8",
        weight_type="int8",
        calibration=cal,
        exclude=ExcludeSection(),
        gates={},
        auto_fallback=False,
        max_float_fraction=0.25,
        fallback_step=1,
        require_speedup=None,
        check=CheckSection(),
        options={},
        preprocess=M.PREPROCESS,
        input_shape=[1, 3, 224, 224],
        compile={},
    )
    scheme = OrtQdqScheme(cfg, work, None)
    scheme.calibrate(pre, CalibrationSet(cal, Preprocess(**M.PREPROCESS), [1, 3, 224, 224]), lambda n=1: None)
    qdq = scheme.quantize(pre, [], work / "int8.onnx")
    return {
        "pre": pre,
        "qdq": qdq,
        "scheme": scheme,
        "check": M.load_images(parts["check"]),
        "eval": M.load_images(parts["eval"]),
    }


def test_search_lowers_held_out_top1_flips_on_efficientnet_lite0(real):
    from vopt.quant.evaluate import ort_outputs
    from vopt.quant.search import Hooks, Outcome, Plan, Search, flipped, kl_per_image
    from vopt.quant.sensitivity import IslandProbe

    (cx, _), (ex, _) = real["check"], real["eval"]
    cx = cx[:100]  # 100 of the 150 check photos, and half the layers below: the test stays near a minute
    ref_c = ort_outputs(real["pre"], cx)["logits"]
    ref_e = ort_outputs(real["pre"], ex)["logits"]
    probe = IslandProbe(real["qdq"], real["pre"])

    def out(plan: Plan, idx):
        return probe.outputs(plan.nodes("float"), cx[idx])

    base_kl = float(np.mean(kl_per_image(ref_c, out(Plan(), np.arange(len(cx))))))

    def check(plan: Plan) -> Outcome:  # the gate: a quarter off the KL of the output on the check photos
        kl = float(np.mean(kl_per_image(ref_c, out(plan, np.arange(len(cx))))))
        return Outcome(kl <= 0.75 * base_kl, kl)

    # the first half of the quantized layers (the stem and the early, high-resolution blocks), in graph order
    everything = real["scheme"].candidates(real["qdq"])
    candidates = everything[: len(everything) // 2]
    res = Search(
        Hooks(probe=out, check=check),
        ref_c,
        candidates,
        higher_is_better=False,
        max_changes=len(candidates) // 4,
        focus_extra=16,
    ).run(check(Plan()))
    assert res.converged and 0 < len(res.plan.layers) <= len(candidates) // 4
    # on the held-out photos: the searched artifact as the stage writes it (the float islands edited into
    # the QDQ graph), run by onnxruntime with its default graph optimizations
    final = real["pre"].parent / "searched.onnx"
    final.write_bytes(probe.model_bytes(res.plan.nodes("float")))
    plain_e = ort_outputs(real["qdq"], ex)["logits"]
    final_e = ort_outputs(Path(final), ex)["logits"]
    plain_flips, final_flips = int(flipped(ref_e, plain_e).sum()), int(flipped(ref_e, final_e).sum())
    assert np.mean(kl_per_image(ref_e, final_e)) < np.mean(kl_per_image(ref_e, plain_e))
    assert final_flips < plain_flips, (final_flips, plain_flips, res.plan.layers)
