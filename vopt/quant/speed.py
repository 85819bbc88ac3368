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
        run = ctx.target.runner(artifact, cfg)
    except Exception as exc:  # noqa: BLE001 - a target runner that cannot take this artifact is a 'not measured'
        run = Unavailable(f"{ctx.target.name} runner failed: {str(exc).splitlines()[0][:160]}")
    if isinstance(run, Unavailable) and artifact.format == "openvino-ir" or (
        isinstance(run, Unavailable) and ctx.target.name == "openvino" and artifact.format == "onnx"
    ):
        return _ov_runner(Path(artifact.path))  # OpenVINO is here even when the target's runner is not ready
    return run


def _ov_runner(path: Path) -> Runner | Unavailable:
    try:
        from vopt.quant.evaluate import ov_compiled

        compiled = ov_compiled(path, accurate=False)  # default hints: what a deployment gets
    except ImportError:
        return Unavailable("openvino is not installed")
    name = compiled.inputs[0].get_any_name()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res = compiled(feeds[name] if name in feeds else next(iter(feeds.values())))
        return {o.get_any_name(): np.asarray(res[o]) for o in compiled.outputs}

    return Runner(run=run, runtime="openvino-cpu (default precision hints)")


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
    }
