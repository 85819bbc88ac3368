"""Reference outputs from PyTorch, and comparison of an artifact against them."""

from __future__ import annotations

from typing import Any

import numpy as np

from vopt.validate.metrics import parity


def torch_outputs(model: Any, family: Any, images: np.ndarray, batch: int = 8) -> dict[str, np.ndarray]:
    import torch

    from vopt.models.resolve import OutputWrapper

    wrapped = OutputWrapper.wrap(model, family)
    collected: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs = wrapped(torch.from_numpy(images[i : i + batch]))
            for name, t in zip(family.outputs, outs, strict=True):
                collected.setdefault(name, []).append(t.detach().float().numpy())
    return {k: np.concatenate(v) for k, v in collected.items()}


def compare_outputs(ref: dict[str, np.ndarray], out: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    outputs = {}
    for name, r in ref.items():
        if name not in out:
            continue
        m = parity(r, out[name])
        if name in skip:
            m["note"] = "order not stable (top-k); compare matched detections instead"
        outputs[name] = m
    checked = [m for n, m in outputs.items() if n not in skip]
    return {
        "outputs": outputs,
        "worst_cosine": min((m["cosine"] for m in checked), default=1.0),
        "worst_max_abs_diff": max((m["max_abs_diff"] for m in checked), default=0.0),
    }


def compare_with_torch(model: Any, family: Any, artifact: Any, *, samples: int, data: Any, ctx: Any) -> dict[str, Any]:
    """Export parity: ONNX Runtime on the artifact vs PyTorch on the same real images."""
    from vopt.datasets.images import describe, load_batch
    from vopt.runtimes.ort import run_batches, runner

    images = load_batch(data, artifact.preprocess, samples)
    ref = torch_outputs(model, family, images)
    static = artifact.io.inputs[0].shape[0] if artifact.io.inputs and isinstance(artifact.io.inputs[0].shape[0], int) else None
    run = runner(artifact.path)
    out = run_batches(run, artifact.io.inputs[0].name, [images], static_batch=static)
    result = compare_outputs(ref, out, skip=family.unordered_outputs)
    result["images"] = describe(data)
    result["samples"] = len(images)
    return result
