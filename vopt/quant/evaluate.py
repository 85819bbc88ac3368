"""Quantized vs float on real validation images: raw and centered cosine, SQNR, top-1 agreement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vopt.core.artifact import Preprocess
from vopt.recipe.sections.quantize import CheckSection


def eval_images(
    check: CheckSection, preprocess: Preprocess, stats: Any = None, files: list[Path] | None = None
) -> np.ndarray:
    """The check's images: `files` are the ones sampled from its held-out set (vopt.quant.heldout); `stats`
    (vopt.datasets.images.ImageStats) gets what was used and skipped."""
    from vopt.datasets.images import iter_batches, list_images, sample_files
    from vopt.errors import RecipeError

    files = files if files is not None else sample_files(list_images(check.data), check.samples, check.seed)
    batches = list(iter_batches(files, preprocess, batch=8, augment_seed=check.seed, stats=stats))
    if not batches:
        raise RecipeError("quantize.check.data: no readable images")
    return np.concatenate(batches)


def ort_outputs(path: Path, images: np.ndarray, threads: int | None = None) -> dict[str, np.ndarray]:
    """An ONNX file on ONNX Runtime CPU at full precision (the float reference, the search's ORT proxy)."""
    from vopt.runtimes.base import run_images
    from vopt.runtimes.ort import open_artifact

    with open_artifact(path, threads=threads, accurate=True) as runner:
        return run_images(runner, images)


def outputs_of(
    path: Path, fmt: str, images: np.ndarray, threads: int | None = None
) -> dict[str, np.ndarray] | None:
    """Run an artifact here at full precision; None when no runtime for its format exists on this machine."""
    from vopt.registry import get_format
    from vopt.runtimes.base import Unavailable, run_images

    runner = get_format(fmt).open(path, threads=threads, accurate=True)
    if isinstance(runner, Unavailable):
        return None
    with runner:
        return run_images(runner, images)


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float | None:
    if np.ndim(ref) < 2 or np.shape(ref)[-1] < 2:
        return None
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1)))


def compare(
    ref: dict[str, np.ndarray], out: dict[str, np.ndarray], skip: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Per-output parity. Outputs in `skip` are per-query detection outputs (top-k order is not stable):
    they are compared as matched detections, as export parity and validate do."""
    from vopt.validate.reference import compare_outputs

    arrays = {k: np.asarray(v, np.float32) for k, v in out.items()}
    outputs = compare_outputs(ref, arrays, skip=skip, where="quantize check")["outputs"]
    for name, m in outputs.items():
        if name in skip:
            continue  # argmax over a query's classes says little: box agreement is the task metric
        agree = top1_agreement(ref[name], out[name])
        if agree is not None:
            m["top1_agreement"] = agree
    return {"outputs": outputs}


# What the headline takes the worst of (per-output notes such as `reordered_queries` are not metrics).
HEADLINE_METRICS = ("cosine", "centered_cosine", "sqnr_db", "max_abs_diff", "top1_agreement")


def headline(metrics: dict[str, Any]) -> dict[str, float]:
    """Worst value of each metric over the outputs, for the summary line and the manifest."""
    from vopt.validate.gates import worst

    outs = metrics["outputs"].values()
    keys = [k for k in HEADLINE_METRICS if any(k in m for m in outs)]
    return {k: worst(k, [m[k] for m in outs if k in m]) for k in keys}
