"""'Is there a faster runtime for this file on this CPU?': the same ONNX artifact on ONNX Runtime and on
OpenVINO's CPU plugin (which reads ONNX, QDQ included), timed interleaved in one run."""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np

# Advice is given when the other runtime is at least this much faster.
ADVISE_AT = 1.5


def openvino_vs_ort(
    path: str, feeds: dict[str, np.ndarray], *, threads: int | None, rounds: int = 5, ort_level: str = "all"
) -> dict[str, Any]:
    """Throughput of both runtimes on the same file and inputs; 'not run' when OpenVINO is absent."""
    if importlib.util.find_spec("openvino") is None:
        return {"status": "not run", "reason": "openvino is not installed (pip install 'vopt[openvino]')"}
    import onnxruntime as ort
    import openvino as ov

    from vopt.bench.timing import interleaved

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }.get(ort_level, ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if threads:
        so.intra_op_num_threads = threads
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    core = ov.Core()
    config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(path), "CPU", config)
    request = compiled.create_infer_request()
    batch = next(iter(feeds.values())).shape[0]
    stats = interleaved(
        {"ort": lambda: sess.run(None, feeds), "ov": lambda: request.infer(feeds)},
        rounds=rounds,
        per_round=5,
        warmup=3,
    )
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    ort_ips = 1000.0 * batch / stats["ort"]["p50_ms"]
    ov_ips = 1000.0 * batch / stats["ov"]["p50_ms"]
    result = {
        "status": "ok",
        "batch": batch,
        "onnxruntime_img_s": round(ort_ips, 2),
        "openvino_img_s": round(ov_ips, 2),
        "openvino_speedup": round(ov_ips / ort_ips, 3),
        "openvino_precision_hint": hint.get_type_name() if hasattr(hint, "get_type_name") else str(hint),
        "onnxruntime_ep": "OpenVINOExecutionProvider" in ort.get_available_providers(),
    }
    if result["openvino_speedup"] >= ADVISE_AT:
        result["advice"] = (
            f"OpenVINO runs this ONNX file {result['openvino_speedup']:.2f}x faster on this CPU "
            f"({ov_ips:.1f} vs {ort_ips:.1f} img/s at batch {batch}, interleaved; OpenVINO at its "
            f"default precision hint, {result['openvino_precision_hint']}): consider "
            "compile.target: openvino"
            + ("" if result["onnxruntime_ep"] else ", or onnxruntime-openvino's execution provider")
        )
    return result
