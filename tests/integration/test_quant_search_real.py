"""quantize.search on a real model: EfficientNet-Lite0 with Google's weights, real labelled photos. The
search ranks layers on check photos (never calibration photos) and must lower the top-1 flips on *other*
photos (held out) against plain int8.

The real tests run in a child pytest process (`test_search_on_a_real_model_in_a_child_process`): in one
process after the other quant tests, on a loaded machine, this module once ended the whole run in SIGSEGV
(docs/reliability.md, issue 29). A native crash in the child now fails that one test, with the child's
faulthandler trace, and the rest of the suite goes on. Every session here is single-threaded: ONNX Runtime's
default pool (one spinning thread per core) is what made this module take 600 s alone on a busy 2-core
machine, 90 s on a quiet one."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from benchmarks import _models as M

pytestmark = pytest.mark.slow
CHILD = os.environ.get("VOPT_SEARCH_REAL_CHILD") == "1"
in_child = pytest.mark.skipif(not CHILD, reason="runs in a child process (the test below)")
THREADS = 1  # ORT sessions: no pool of spinning threads fighting a loaded machine


@pytest.mark.skipif(CHILD, reason="the parent of the child run")
@pytest.mark.timeout(2400)  # the child's own limit below, plus its start
def test_search_on_a_real_model_in_a_child_process(tmp_path):
    why = M.why_unavailable()
    if why:
        pytest.skip(why)
    env = {**os.environ, "VOPT_SEARCH_REAL_CHILD": "1", "PYTHONFAULTHANDLER": "1", "OMP_NUM_THREADS": "1"}
    # Python's own faulthandler on the real stderr: pytest's plugin writes to its capture file, which a native
    # crash loses (the SIGSEGV seen here left no trace that way)
    cmd = [sys.executable, "-X", "faulthandler", "-m", "pytest", "-q", "--capture=sys"]
    cmd += ["-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:faulthandler"]
    # measured (7 Dec 2026, 2 cores): about 90 s quiet, 586 s at load 10-12 (other builds running); the child
    # fails on its own past 2000 s, over 3x the loaded figure
    # timeout_method=thread: no SIGALRM is ever delivered into the child's native kernels (the crash below)
    cmd += ["-o", "timeout=2000", "-o", "timeout_method=thread"]
    cmd += ["--basetemp", str(tmp_path / "child"), str(Path(__file__))]
    res = subprocess.run(
        cmd, cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True
    )
    tail = (res.stdout + res.stderr)[-6000:]
    assert res.returncode == 0, (
        f"child pytest exited {res.returncode} (negative: killed by that signal)\n{tail}"
    )
    assert re.search(r"\b2 passed", res.stdout), tail


@pytest.fixture(scope="module")
def real(tmp_path_factory):
    why = M.why_unavailable()
    if why:
        pytest.skip(why)
    from onnxruntime.quantization import quant_pre_process

    from vopt.core.artifact import Preprocess
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
        # the plain int8 the search was measured against: without bias correction, the default since 7 Dec
        # 2026. Measured that day: bias correction alone took the held-out flips from 9 to 5, and the search
        # from there left 5; without it the search took 9 to 4 (9 layers in float)
        options={"bias_correction": False},
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


@in_child
def test_search_lowers_held_out_top1_flips_on_efficientnet_lite0(real):
    from vopt.quant.evaluate import ort_outputs
    from vopt.quant.search import Hooks, Outcome, Plan, Search, flipped, kl_per_image
    from vopt.quant.sensitivity import IslandProbe

    (cx, _), (ex, _) = real["check"], real["eval"]
    cx = cx[:100]  # 100 of the 150 check photos: the test stays near a minute and a half
    ref_c = ort_outputs(real["pre"], cx, THREADS)["logits"]
    ref_e = ort_outputs(real["pre"], ex, THREADS)["logits"]
    probe = IslandProbe(real["qdq"], real["pre"], THREADS)

    def out(plan: Plan, idx):
        return probe.outputs(plan.nodes("float"), cx[idx])

    base_kl = float(np.mean(kl_per_image(ref_c, out(Plan(), np.arange(len(cx))))))

    def check(plan: Plan) -> Outcome:  # the gate: a quarter off the KL of the output on the check photos
        kl = float(np.mean(kl_per_image(ref_c, out(plan, np.arange(len(cx))))))
        return Outcome(kl <= 0.75 * base_kl, kl)

    # every quantized layer. Measured (2 Dec 2026): 9 layers held the gate, and the held-out flips went from
    # 9 to 4 of 222. With only the first half of the layers, the gate needed layers from the second half.
    candidates = real["scheme"].candidates(real["qdq"])
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
    plain_e = ort_outputs(real["qdq"], ex, THREADS)["logits"]
    final_e = ort_outputs(Path(final), ex, THREADS)["logits"]
    plain_flips, final_flips = int(flipped(ref_e, plain_e).sum()), int(flipped(ref_e, final_e).sum())
    assert np.mean(kl_per_image(ref_e, final_e)) < np.mean(kl_per_image(ref_e, plain_e))
    assert final_flips < plain_flips, (final_flips, plain_flips, res.plan.layers)


@in_child
def test_the_probe_measures_what_the_gates_measure(real):
    """The ranking's probe runs the QDQ model as the gates' check does (Q/DQ as written, in float): with no
    layer changed it gives the check's output. It used onnxruntime's fused u8 x s8 kernels, which saturate on
    x86 CPUs without VNNI: there this model (s8 weights, no reduce_range) differed from its own check run
    by a top-1 class on some photos, and the ranking compared 16-bit trials against a base no gate saw."""
    from vopt.quant.evaluate import ort_outputs
    from vopt.quant.sensitivity import IslandProbe

    images = real["check"][0][:24]
    checked = ort_outputs(real["qdq"], images, THREADS)["logits"]
    probed = IslandProbe(real["qdq"], real["pre"], THREADS).outputs([], images, "logits")
    np.testing.assert_allclose(probed, checked, rtol=0, atol=1e-4)
