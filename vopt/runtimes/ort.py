"""ONNX Runtime sessions and runners.

The graph optimization level is a session setting, not part of the file: ORT_ENABLE_ALL's NHWC layout
transform for QLinearConv happens only when a session is created. A vopt artifact records the level it was
measured at in its metadata (`vopt.runtime.onnxruntime`), and `runner()` applies it when it loads the file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vopt.runtimes.base import Runner, fixed_batch

RUNTIME_NAME = "onnxruntime"
METADATA_KEY = "vopt.runtime.onnxruntime"
LEVELS = {
    "disabled": "ORT_DISABLE_ALL",
    "basic": "ORT_ENABLE_BASIC",
    "extended": "ORT_ENABLE_EXTENDED",
    "all": "ORT_ENABLE_ALL",
}


def recorded_settings(path: str | Path) -> dict[str, Any]:
    """The session settings a vopt artifact carries ({} for any other ONNX file)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not an ONNX protobuf (e.g. an .ort file): nothing recorded
        return {}
    meta = {p.key: p.value for p in proto.metadata_props}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


# The level output checks run QDQ files at (`accurate`), and the search's probe with them: Q/DQ as written, in
# float. One constant, so the probe and the gates cannot drift onto different numeric paths.
ACCURATE_LEVEL = "basic"


def session_options(settings: dict[str, Any] | None = None, threads: int | None = None) -> Any:
    import onnxruntime as ort

    so = ort.SessionOptions()
    level = (settings or {}).get("graph_optimization_level")
    if level:
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, LEVELS.get(level, level))
    threads = threads or (settings or {}).get("intra_op_num_threads")
    if threads:
        so.intra_op_num_threads = int(threads)
    so.log_severity_level = 3
    return so


def session(
    path: str | Path,
    *,
    threads: int | None = None,
    providers: list[str] | None = None,
    options: Any = None,
    settings: dict[str, Any] | None = None,
):
    """An InferenceSession with the artifact's recorded settings (or `settings` when given)."""
    import onnxruntime as ort

    so = options or session_options(recorded_settings(path) if settings is None else settings, threads)
    if options is not None and threads:
        so.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), sess_options=so, providers=providers or ["CPUExecutionProvider"])


def runner(
    path: str | Path,
    *,
    threads: int | None = None,
    label: str = "onnxruntime-cpu",
    settings: dict[str, Any] | None = None,
    providers: list[str] | None = None,
) -> Runner:
    import onnxruntime as ort

    applied = recorded_settings(path) if settings is None else settings
    sess = session(path, threads=threads, settings=applied, providers=providers)
    names = [o.name for o in sess.get_outputs()]
    in_types = {i.name: i.type for i in sess.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {
            k: v.astype(np.float16) if in_types.get(k) == "tensor(float16)" else v for k, v in feeds.items()
        }
        outs = sess.run(names, cast)
        return {
            n: np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o
            for n, o in zip(names, outs, strict=True)
        }

    first = sess.get_inputs()[0]
    info = {
        "onnxruntime": ort.__version__,
        "providers": sess.get_providers(),
        "settings": applied,
        "input_name": first.name,
        "static_batch": fixed_batch(first.shape[0]),
    }
    return Runner(run=run, runtime=label, info=info)


def static_batch(path: str | Path) -> int | None:
    """The first input's batch size when the file fixes it, else None."""
    import onnx

    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    return int(dim.dim_value) if dim.dim_value > 0 else None  # -1 (PaddlePaddle) is open


def open_artifact(
    path: str | Path,
    *,
    settings: dict[str, Any] | None = None,
    threads: int | None = None,
    accurate: bool = False,
) -> Runner:
    """The format table's entry: ONNX on the CPU EP. `settings`: the compile section of a target that runs on
    onnxruntime (its `threads`, and `session_optimization`, the level a session should run the file at); the
    level the artifact records applies when the section names none. `accurate` (output checks) runs Q/DQ as
    written, in float (ORT_ENABLE_BASIC does not fuse them): what a QDQ file means on any runtime, not what
    this machine's int8 kernels compute (which saturate on x86 CPUs without VNNI)."""
    s = settings or {}
    level = s.get("session_optimization") or (ACCURATE_LEVEL if accurate else None)
    chosen = {"graph_optimization_level": level} if level else None
    return runner(path, threads=threads or s.get("threads"), settings=chosen)
