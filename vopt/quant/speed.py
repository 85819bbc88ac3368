"""'Did INT8 pay?': time the quantized and the float model on the target's runtime, interleaved, until the
95% interval on the speedup excludes 1 (or a time budget runs out: then the verdict is 'inconclusive')."""

from __future__ import annotations

from typing import Any

import numpy as np

from vopt.core.artifact import Artifact
from vopt.errors import first_line
from vopt.runtimes.base import Feeds, Runner, Unavailable, pad_to

# How long the speed check may time before it gives its verdict (seconds, after warm-up).
BUDGET_S = 8.0
MAX_ROUNDS = 160


def _first_line(exc: Exception) -> str:
    return first_line(exc, limit=160)


def speed_runner(target: Any, cfg: Any, artifact: Artifact, runtime_format: str) -> Runner | Unavailable:
    """The artifact as deployed. When the target runs on the runtime vopt's format table gives
    `runtime_format` (the quantized artifact's format: an OpenVINO IR on openvino, an ONNX on onnxruntime),
    that runtime opens it with the compile section's settings and the artifact's recorded hints, not the
    target's accuracy-check runner (which pins f32 on OpenVINO: a speedup over an f32 baseline no deployment
    runs would be the wrong answer). The float ONNX goes through the same runtime as its quantized twin, so
    both sides are timed alike."""
    from vopt.registry import get_format

    fmt = get_format(runtime_format)
    try:
        if fmt.runtime_name == target.runtime_name:
            return fmt.open(artifact, settings=cfg.model_dump() if cfg is not None else None)
        return target.runner(artifact, cfg)
    except Exception as exc:  # noqa: BLE001 - a runtime that cannot take this artifact is a 'not measured'
        return Unavailable(f"{target.name} runner failed: {_first_line(exc)}")


def compare_speed(
    float_art: Artifact,
    quant_art: Artifact,
    ctx: Any,
    images: np.ndarray | Feeds,
    batch: int,
    rounds: int,
    *,
    compile_settings: dict[str, Any],
    budget_s: float = BUDGET_S,
) -> dict[str, Any]:
    """`rounds`: the fewest interleaved rounds before a verdict; timing goes on until the interval is
    decided."""
    from vopt.bench.timing import MAX_SPREAD, compare_until_stable

    if ctx.target.emulated:
        return {"status": "not measured", "reason": ctx.target.emulated}
    try:
        cfg = ctx.target.Config.model_validate(
            compile_settings
        )  # the quantize step's own config carries them
    except Exception as exc:  # noqa: BLE001 - a compile section that does not fit is a 'not measured'
        return {"status": "not measured", "reason": f"{ctx.target.name} settings: {_first_line(exc)}"}
    rf = speed_runner(ctx.target, cfg, float_art, quant_art.format)
    if isinstance(rf, Unavailable):
        return {"status": "not measured", "reason": rf.reason}
    with rf:
        rq = speed_runner(ctx.target, cfg, quant_art, quant_art.format)
        if isinstance(rq, Unavailable):
            return {"status": "not measured", "reason": rq.reason}
        with rq:
            if isinstance(images, Feeds):  # a component's named inputs (a UNet's recorded call)
                feeds = {k: np.ascontiguousarray(v) for k, v in images[:batch].padded(batch).arrays.items()}
            else:
                feed = pad_to(images[:batch], batch)
                name = quant_art.io.inputs[0].name if quant_art.io.inputs else "pixel_values"
                feeds = {name: np.ascontiguousarray(feed)}
            t = compare_until_stable(
                lambda: rf(feeds),
                lambda: rq(feeds),
                min_rounds=rounds,
                max_rounds=MAX_ROUNDS,
                budget_s=budget_s,
                max_spread=MAX_SPREAD,  # a headline figure, not only a direction (vopt.bench.timing)
            )
    return speed_report(t, rf, rq, batch, precision_of(quant_art))


def precision_of(artifact: Artifact) -> str:
    return str(
        ((artifact.meta or {}).get("quantized") or {}).get("precision")
        or artifact.meta.get("precision")
        or "int8"
    )


def speed_report(t: dict[str, Any], rf: Runner, rq: Runner, batch: int, precision: str) -> dict[str, Any]:
    f_ips = batch / (t["baseline_p50_ms"] / 1e3)
    q_ips = batch / (t["candidate_p50_ms"] / 1e3)
    interval = [round(t["low"], 3), round(t["high"], 3)]
    label = precision.upper()
    result: dict[str, Any] = {
        # 'inconclusive' keeps the stage from calling a tie 'did not pay': only a decided interval is 'ok'.
        "status": "ok" if t["verdict"] != "inconclusive" else "inconclusive",
        "runtime": rq.runtime,
        "float_runtime": rf.runtime,
        "batch": batch,
        "float_img_s": round(f_ips, 2),
        "quantized_img_s": round(q_ips, 2),
        "float_p50_ms": round(t["baseline_p50_ms"], 3),
        "quantized_p50_ms": round(t["candidate_p50_ms"], 3),
        "speedup": round(t["ratio"], 3),
        "speedup_ci95": interval,
        "paid": True if t["verdict"] == "faster" else False if t["verdict"] == "slower" else None,
        "rounds": t["rounds"],
        "stopped": t["stopped"],
        "method": f"interleaved rounds of {t['per_round']} calls each (median per round), until a 95% "
        "t-interval on the log speed ratio (Bonferroni over the looks at doubling round counts) excludes 1, "
        f"or the time budget: {t['rounds']} rounds in {t['seconds']:.1f} s, stopped at {t['stopped']}",
        # OpenVINO: the INFERENCE_PRECISION_HINT asked for ("default": none) and the precision the plugin ran.
        **(
            {
                "precision_hint": rq.info["precision_hint"],
                "inference_precision": rq.info["inference_precision"],
            }
            if "precision_hint" in rq.info
            else {}
        ),
    }
    if result["status"] == "inconclusive":
        result["reason"] = (
            f"{label} vs float is inconclusive: {t['ratio']:.2f}x, 95% interval "
            f"{interval[0]:.2f}-{interval[1]:.2f}x straddles 1 after {t['rounds']} rounds "
            f"({t['stopped']}) on {rq.runtime}"
        )
        result["verdict"] = result["reason"]
    return result
