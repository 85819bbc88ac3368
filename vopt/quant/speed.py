"""'Did INT8 pay?': time the quantized and the float model on the target's runtime, interleaved."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vopt.pipeline.artifact import Artifact
from vopt.targets.base import Runner, Unavailable

# Targets whose runtime here only emulates the device: timing it would say nothing about the device.
EMULATED = {
    "webgpu": "the browser runs here on SwiftShader/wasm, not on a GPU: timings would not reflect the device",
    "webnn": "WebNN runs here only on wasm: timings would not reflect the device",
    "qnn": "QNN runs here on the x86 HTP simulator: timings would not reflect the NPU",
}


def _runner(ctx: Any, artifact: Artifact) -> Runner | Unavailable:
    try:
        cfg = ctx.target.Config.model_validate(ctx.recipe.compile.model_dump())
    except Exception as exc:  # noqa: BLE001 - a compile section that does not fit is a 'not measured'
        return Unavailable(f"{ctx.target.name} settings: {str(exc).splitlines()[0][:160]}")
    if ctx.target.name == "openvino" or artifact.format == "openvino-ir":
        # Not the target's runner: it pins INFERENCE_PRECISION_HINT f32 for accuracy checks, and a speedup over
        # an f32 baseline no deployment runs would be the wrong answer.
        return _ov_runner(Path(artifact.path), cfg if ctx.target.name == "openvino" else None)
    try:
        return ctx.target.runner(artifact, cfg)
    except Exception as exc:  # noqa: BLE001 - a target runner that cannot take this artifact is a 'not measured'
        return Unavailable(f"{ctx.target.name} runner failed: {str(exc).splitlines()[0][:160]}")


def _ov_runner(path: Path, cfg: Any = None) -> Runner | Unavailable:
    """OpenVINO at the plugin's default precision hint (bf16 on CPUs with avx512_bf16) unless the recipe sets
    compile.inference_precision (or precision: bf16); the device, threads and performance hint of the recipe."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return Unavailable("openvino is not installed")
    import openvino as ov

    from vopt.runtimes.openvino import DEFAULT_HINT, runner

    device = getattr(cfg, "device", "CPU")
    if device != "AUTO" and device not in ov.Core().available_devices:
        device = "CPU"  # timed where OpenVINO is; the speed report names the device
    hint = getattr(cfg, "inference_precision", None) or ("bf16" if getattr(cfg, "precision", None) == "bf16" else DEFAULT_HINT)
    run = runner(path, device=device, hint=hint, threads=getattr(cfg, "threads", None),
                 performance_hint=getattr(cfg, "performance_hint", None))
    run.runtime = f"{run.runtime} ({'default precision hint' if hint == DEFAULT_HINT else 'hint ' + hint}: " \
                  f"{run.info['inference_precision']})"
    return run


def compare_speed(float_art: Artifact, quant_art: Artifact, ctx: Any, images: np.ndarray, batch: int,
                  rounds: int) -> dict[str, Any]:
    from vopt.bench.timing import interleaved

    if ctx.target.name in EMULATED:
        return {"status": "not measured", "reason": EMULATED[ctx.target.name]}
    rf, rq = _runner(ctx, float_art), _runner(ctx, quant_art)
    for r in (rf, rq):
        if isinstance(r, Unavailable):
            return {"status": "not measured", "reason": r.reason}
    feed = images[:batch]
    if len(feed) < batch:
        feed = np.concatenate([feed, np.repeat(feed[-1:], batch - len(feed), axis=0)])
    name = quant_art.io.inputs[0].name if quant_art.io.inputs else "pixel_values"
    feeds = {name: np.ascontiguousarray(feed)}
    timings = interleaved({"float": lambda: rf(feeds), "quantized": lambda: rq(feeds)}, rounds=rounds, per_round=5, warmup=2)
    for r in (rf, rq):
        if r.close:
            r.close()
    f_ips = batch / (timings["float"]["p50_ms"] / 1e3)
    q_ips = batch / (timings["quantized"]["p50_ms"] / 1e3)
    speedup = q_ips / f_ips
    return {
        "status": "ok",
        "runtime": rq.runtime,
        "float_runtime": rf.runtime,
        "batch": batch,
        "float_img_s": round(f_ips, 2),
        "quantized_img_s": round(q_ips, 2),
        "float_p50_ms": round(timings["float"]["p50_ms"], 3),
        "quantized_p50_ms": round(timings["quantized"]["p50_ms"], 3),
        "speedup": round(speedup, 3),
        "paid": speedup > 1.0,
        "method": f"interleaved, {rounds} rounds x 5 calls, median",
        # OpenVINO: the INFERENCE_PRECISION_HINT asked for ("default": none) and the precision the plugin ran.
        **({"precision_hint": rq.info["precision_hint"], "inference_precision": rq.info["inference_precision"]}
           if "precision_hint" in rq.info else {}),
    }
