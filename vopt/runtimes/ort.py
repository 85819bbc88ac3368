"""ONNX Runtime sessions and runners."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vopt.targets.base import Runner


def session(path: str | Path, *, threads: int | None = None, providers: list[str] | None = None, options: Any = None):
    import onnxruntime as ort

    so = options or ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=providers or ["CPUExecutionProvider"])


def runner(path: str | Path, *, threads: int | None = None, label: str = "onnxruntime-cpu") -> Runner:
    import onnxruntime as ort

    sess = session(path, threads=threads)
    names = [o.name for o in sess.get_outputs()]
    in_types = {i.name: i.type for i in sess.get_inputs()}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cast = {k: v.astype(np.float16) if in_types.get(k) == "tensor(float16)" else v for k, v in feeds.items()}
        outs = sess.run(names, cast)
        return {n: np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o for n, o in zip(names, outs, strict=True)}

    return Runner(run=run, runtime=label, info={"onnxruntime": ort.__version__, "providers": sess.get_providers()})


def run_batches(run: Runner, input_name: str, batches: list[np.ndarray], static_batch: int | None = None) -> dict[str, np.ndarray]:
    """Run every batch (split to the artifact's static batch size if it has one) and concatenate per output."""
    collected: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        chunks = [batch] if not static_batch else [batch[i : i + static_batch] for i in range(0, len(batch), static_batch)]
        for chunk in chunks:
            if static_batch and len(chunk) < static_batch:
                pad = np.repeat(chunk[-1:], static_batch - len(chunk), axis=0)
                out = run({input_name: np.concatenate([chunk, pad])})
                out = {k: v[: len(chunk)] for k, v in out.items()}
            else:
                out = run({input_name: chunk})
            for k, v in out.items():
                collected.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in collected.items()}
