"""Core ML runtime (macOS only): run an .mlpackage through coremltools' MLModel.predict."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vopt.runtimes.base import Runner


def runner(path: str | Path, *, compute_units: str = "ALL") -> Runner:
    import coremltools as ct

    model = ct.models.MLModel(str(path), compute_units=getattr(ct.ComputeUnit, compute_units))
    outputs = [o.name for o in model.get_spec().description.output]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = model.predict({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in feeds.items()})
        return {name: np.asarray(result[name], dtype=np.float32) for name in outputs}

    return Runner(
        run=run, runtime="coreml", info={"coremltools": ct.__version__, "compute_units": compute_units}
    )
