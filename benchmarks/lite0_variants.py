"""Which NNCF settings move EfficientNet-Lite0's int8 top-1 agreement on OpenVINO (issue 11's question: can
any of them reach 99%?). Each variant quantizes the same float ONNX model on the same 128 calibration photos
and runs on the CPU plugin; agreement is top-1 against PyTorch fp32 on the 150 check and 222 held-out photos
of benchmarks/real_model.py's split.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/lite0_variants.py [--only NAME ...] [--finetune-epochs 4]

Speed: every model of the run, fp32 included, timed in the same interleaved rounds (batch 1, 2 threads,
7 rounds x 30 calls, median). The float model here is a plain `torch.onnx.export` of the module, without
vopt's fuse step, so the default row is close to vopt's default artifact, not identical to it."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import _models as M  # noqa: E402

THREADS = 2
# name -> nncf.quantize settings on top of vopt's defaults for a CPU without VNNI (minmax ranges, 7-bit
# weights in every layer, fast bias correction, the performance preset)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "mixed preset": {"preset": "mixed"},
    "full bias correction": {"fast_bias_correction": False},
    "no bias correction": {"disable_bias_correction": True},
    "depthwise convs in float": {"types": ["GroupConvolution"]},
    "stem conv + classifier in float": {"patterns": [".*_conv_stem.*", ".*_fc.*"]},
    "projection convs in float": {"patterns": [".*_project_conv.*"]},
    "8-bit weights everywhere (no overflow fix)": {"overflow_fix": "disable"},
    "8-bit depthwise weights, 7-bit elsewhere": {"overflow_fix": "dense"},
}


def compiled(core, model, hint: str | None = None):
    cfg: dict[str, Any] = {"INFERENCE_NUM_THREADS": THREADS, "PERFORMANCE_HINT": "LATENCY"}
    if hint:
        cfg["INFERENCE_PRECISION_HINT"] = hint
    return core.compile_model(model, "CPU", cfg)


def top1(model, xs: np.ndarray) -> np.ndarray:
    req = model.create_infer_request()
    return np.array([int(np.argmax(req.infer({0: xs[i : i + 1]})[0])) for i in range(len(xs))])


def img_per_s(models: dict[str, Any], x: np.ndarray, rounds: int = 7, calls: int = 30) -> dict[str, float]:
    """Each model's median img/s over interleaved rounds, so that a change in the machine's speed during the
    run falls on every model alike."""
    reqs = {name: m.create_infer_request() for name, m in models.items()}
    for req in reqs.values():
        for _ in range(10):
            req.infer({0: x})
    seconds: dict[str, list[float]] = {name: [] for name in reqs}
    for _ in range(rounds):
        for name, req in reqs.items():
            t = time.perf_counter()
            for _ in range(calls):
                req.infer({0: x})
            seconds[name].append((time.perf_counter() - t) / calls)
    return {name: 1 / float(np.median(s)) for name, s in seconds.items()}


def nncf_quantize(source, calib: np.ndarray, settings: dict[str, Any]):
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    kwargs: dict[str, Any] = {}
    if settings.get("types") or settings.get("patterns"):
        kwargs["ignored_scope"] = nncf.IgnoredScope(
            patterns=settings.get("patterns", []), types=settings.get("types", []), validate=False
        )
    fix = settings.get("overflow_fix", "enable")
    with _overflow_fix_without_depthwise() if fix == "dense" else contextlib.nullcontext():
        return nncf.quantize(
            source,
            nncf.Dataset([calib[i : i + 1] for i in range(len(calib))]),
            subset_size=len(calib),
            preset=nncf.QuantizationPreset[settings.get("preset", "performance").upper()],
            fast_bias_correction=settings.get("fast_bias_correction", True),
            advanced_parameters=AdvancedQuantizationParameters(
                activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX,
                overflow_fix=OverflowFix.DISABLE if fix == "disable" else OverflowFix.ENABLE,
                disable_bias_correction=settings.get("disable_bias_correction", False),
            ),
            **kwargs,
        )


@contextlib.contextmanager
def _overflow_fix_without_depthwise():
    """NNCF's overflow fix without the GroupConvolutions (depthwise convs): NNCF has no option for it, so
    its OpenVINO backend's list of the op types the fix applies to is narrowed for the call."""
    from nncf.openvino.graph.metatypes import openvino_metatypes as om
    from nncf.quantization.algorithms.min_max.openvino_backend import OVMinMaxAlgoBackend

    original = OVMinMaxAlgoBackend.overflow_fix_metatypes
    OVMinMaxAlgoBackend.overflow_fix_metatypes = property(
        lambda self: [t for t in original.fget(self) if t is not om.OVGroupConvolutionMetatype]
    )
    try:
        yield
    finally:
        OVMinMaxAlgoBackend.overflow_fix_metatypes = original


def finetuned(calib: np.ndarray, epochs: int, lr: float):
    """NNCF's PyTorch PTQ, then distillation from fp32 on the calibration photos (mirrored on odd epochs):
    what a short quantization-aware fine-tune buys without labels."""
    import torch

    torch.manual_seed(0)
    teacher = M.torch_model().eval()
    student = nncf_quantize(M.torch_model().eval(), torch.from_numpy(calib), {})
    if epochs == 0:
        return student
    x_all = torch.from_numpy(calib)
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    for epoch in range(epochs):
        student.train()
        for m in student.modules():  # 128 photos are too few to move BatchNorm statistics
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()
        for idx in torch.randperm(len(x_all)).split(16):
            x = x_all[idx].flip(3) if epoch % 2 else x_all[idx]
            with torch.no_grad():
                target = teacher(x)
            out = student(x)
            loss = torch.nn.functional.kl_div(
                torch.log_softmax(out, 1), torch.softmax(target, 1), reduction="batchmean"
            ) + 0.01 * torch.nn.functional.mse_loss(out, target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return student.eval()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="*", choices=sorted(VARIANTS), help="variants to run (default: all)")
    ap.add_argument("--finetune-epochs", type=int, nargs="*", default=[], help="PyTorch PTQ + distillation")
    ap.add_argument("--lr", type=float, default=1e-5)
    ap.add_argument("--work", type=Path)
    args = ap.parse_args()
    why = M.why_unavailable()
    if why:
        sys.exit(f"skipped: {why}")
    import openvino as ov
    import torch

    torch.set_num_threads(THREADS)
    work = args.work or Path(tempfile.mkdtemp(prefix="vopt-lite0-"))
    parts = M.split(M.samples_dir(), work / "split")
    calib, _ = M.load_images(parts["calibration"])
    xs = np.concatenate([M.load_images(parts["check"])[0], M.load_images(parts["eval"])[0]])
    n_check = M.SPLIT["check"]
    with torch.no_grad():
        ref = M.torch_model().eval()(torch.from_numpy(xs)).numpy().argmax(1)
    onnx_path = M.export_onnx(work / "lite0.onnx")
    core = ov.Core()
    fp32 = compiled(core, ov.convert_model(str(onnx_path)), "f32")
    rows: list[tuple[str, Any, np.ndarray, float]] = []  # name, compiled model, agreement, quantize s

    def row(name: str, model, seconds: float) -> None:
        model = compiled(core, model)
        rows.append((name, model, top1(model, xs) == ref, seconds))
        print(f"{name}: quantized in {seconds:.0f} s", flush=True)

    for name in args.only or VARIANTS:
        t = time.monotonic()
        q = nncf_quantize(ov.convert_model(str(onnx_path)), calib, VARIANTS[name])
        row(name, q, time.monotonic() - t)
    for epochs in args.finetune_epochs:
        t = time.monotonic()
        model = finetuned(calib, epochs, args.lr)
        seconds = time.monotonic() - t
        label = f"PyTorch PTQ + {epochs} epochs of distillation (lr {args.lr:g})" if epochs else "PyTorch PTQ"
        row(label, ov.convert_model(model, example_input=torch.zeros(1, 3, 224, 224)), seconds)
    speed = img_per_s({"fp32": fp32, **{name: m for name, m, _, _ in rows}}, xs[:1])
    print(f"OpenVINO fp32: {speed['fp32']:.1f} img/s")
    print("| variant | check agreement (150) | held-out agreement (222) | all 372 ", end="")
    print("| img/s | × fp32 | quantize s |")
    print("|---|---|---|---|---|---|---|")
    for name, _, agree, seconds in rows:
        print(
            f"| {name} | {agree[:n_check].mean():.1%} | {agree[n_check:].mean():.1%} | {agree.mean():.1%} "
            f"| {speed[name]:.1f} | {speed[name] / speed['fp32']:.2f} | {seconds:.0f} |"
        )


if __name__ == "__main__":
    main()
