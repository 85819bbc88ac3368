"""OpenVINO's performance counters (PERF_COUNT): per-layer time and the kernel, hence the precision, it
ran."""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from vopt.profiling.result import OpTime, Profile, precision_from_kernel

_SKIP = ("Parameter", "Result", "Constant")


def profile_ir(
    path: str | Path,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    hint: str | None = None,
) -> Profile:
    """`hint` is the INFERENCE_PRECISION_HINT (None: the plugin's default, bf16 on CPUs with avx512_bf16)."""
    import openvino as ov

    core = ov.Core()
    p = Path(path)
    xml = next(iter(sorted(p.glob("*.xml")))) if p.is_dir() else p
    config: dict[str, Any] = {"PERF_COUNT": True}
    if hint:
        config["INFERENCE_PRECISION_HINT"] = hint
    if threads:
        config["INFERENCE_NUM_THREADS"] = threads
    compiled = core.compile_model(core.read_model(str(xml)), "CPU", config)
    request = compiled.create_infer_request()
    inputs = {port.get_any_name(): port for port in compiled.inputs}
    data = {inputs.get(k, k): np.ascontiguousarray(v) for k, v in feeds.items()}
    for _ in range(warmup):
        request.infer(data)
    sums: dict[str, float] = defaultdict(float)
    last: dict[str, Any] = {}
    t0 = time.perf_counter()
    for _ in range(runs):
        request.infer(data)
        for info in request.get_profiling_info():
            if info.status != info.Status.EXECUTED or info.node_type in _SKIP:
                continue
            sums[info.node_name] += info.real_time.total_seconds() * 1000
            last[info.node_name] = info
    total_ms = (time.perf_counter() - t0) * 1000 / runs
    ops = [
        OpTime(
            node=name,
            op_type=last[name].node_type,
            ms=ms / runs,
            precision=precision_from_kernel(last[name].exec_type),
            device="CPU",
            kernel=last[name].exec_type,
        )
        for name, ms in sums.items()
    ]
    used = compiled.get_property("INFERENCE_PRECISION_HINT")
    hint_used = used.get_type_name() if hasattr(used, "get_type_name") else str(used)
    return Profile(
        runtime=f"openvino {ov.__version__} (CPU, inference precision {hint_used})",
        runs=runs,
        ops=ops,
        total_ms=total_ms,
    )
