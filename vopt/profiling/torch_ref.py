"""torch.profiler on the reference PyTorch model: what the artifact's time is compared with."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import numpy as np

from vopt.profiling.result import OpTime, Profile


def profile_torch(module: Any, x: np.ndarray, *, runs: int = 5, warmup: int = 1) -> Profile:
    import os

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # Kineto's start/stop lines are not vopt's output
    import torch
    from torch.profiler import ProfilerActivity, profile

    inp = torch.from_numpy(np.ascontiguousarray(x))
    with torch.inference_mode():
        for _ in range(warmup):
            module(inp)
        t0 = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(runs):
                module(inp)
        total_ms = (time.perf_counter() - t0) * 1000 / runs
    # Self time per aten op: the profiler has no node names, so ops are grouped by kind.
    sums: dict[str, float] = defaultdict(float)
    for ev in prof.key_averages():
        if ev.key.startswith("aten::"):
            sums[ev.key] += ev.self_cpu_time_total / 1000 / runs
    ops = [
        OpTime(node=k, op_type=k.removeprefix("aten::"), ms=v, precision="fp32", device="torch-cpu")
        for k, v in sums.items()
        if v > 0.0005
    ]
    return Profile(
        runtime=f"torch {torch.__version__} eager (CPU)",
        runs=runs,
        ops=ops,
        total_ms=total_ms,
        notes=["PyTorch eager has no node names: rows are aten ops, grouped by kind (self CPU time)"],
    )
