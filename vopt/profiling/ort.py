"""ONNX Runtime's own profiler: per-node kernel times and the provider that ran each node."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from vopt.profiling.result import OpTime, Profile, precision_from_types


def profile_onnx(
    path: str | Path,
    feeds: dict[str, np.ndarray],
    *,
    runs: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    level: str = "all",
) -> Profile:
    import onnxruntime as ort

    levels = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    with tempfile.TemporaryDirectory(prefix="vopt-prof-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[level]
        so.log_severity_level = 3
        if threads:
            so.intra_op_num_threads = threads
        so.enable_profiling = True
        so.profile_file_prefix = os.path.join(tmp, "ort")
        sess = ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
        cast = _cast(sess, feeds)
        for _ in range(warmup):
            sess.run(None, cast)
        t0 = time.perf_counter()
        for _ in range(runs):
            sess.run(None, cast)
        total_ms = (time.perf_counter() - t0) * 1000 / runs
        trace = Path(sess.end_profiling())
        events = json.loads(trace.read_text())
    return Profile(
        runtime=f"onnxruntime {ort.__version__} (CPU, graph optimization {level})",
        runs=runs,
        ops=_node_times(events, warmup + runs, runs),
        total_ms=total_ms,
    )


def _cast(sess, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    types = {i.name: i.type for i in sess.get_inputs()}
    return {k: v.astype(np.float16) if types.get(k) == "tensor(float16)" else v for k, v in feeds.items()}


def _node_times(events: list[dict], calls: int, timed: int) -> list[OpTime]:
    """Kernel events ('<node>_kernel_time'), averaged over the last `timed` calls (warm-up left out)."""
    per_node: dict[str, list[dict]] = defaultdict(list)
    for ev in events:
        if ev.get("cat") == "Node" and str(ev.get("name", "")).endswith("_kernel_time"):
            per_node[ev["name"][: -len("_kernel_time")]].append(ev)
    ops = []
    for node, evs in per_node.items():
        timed_evs = evs[-timed:] if len(evs) >= calls else evs
        args = timed_evs[-1].get("args", {})
        in_types = [next(iter(t)) for t in args.get("input_type_shape", []) if t]
        op_type = args.get("op_name", "?")
        ms = sum(e.get("dur", 0) for e in timed_evs) / 1000 / max(len(timed_evs), 1)
        ops.append(
            OpTime(
                node=node,
                op_type=op_type,
                ms=ms,
                precision=precision_from_types(op_type, in_types),
                device=args.get("provider", "?"),
            )
        )
    return ops
