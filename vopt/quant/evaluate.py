"""Quantized vs float on real validation images: raw and centered cosine, SQNR, top-1 agreement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vopt.pipeline.artifact import Preprocess
from vopt.recipe.sections.quantize import CheckSection


def eval_images(check: CheckSection, preprocess: Preprocess, files: list[Path] | None = None) -> np.ndarray:
    """The check's images; `files` are the ones sampled from its held-out set (vopt.quant.heldout)."""
    from vopt.datasets.images import iter_batches, list_images, sample_files

    files = files if files is not None else sample_files(list_images(check.data), check.samples, check.seed)
    return np.concatenate(list(iter_batches(files, preprocess, batch=8, augment_seed=check.seed)))


def _static_batch(path: Path) -> int | None:
    import onnx

    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    return int(dim.dim_value) if dim.dim_value else None


def ort_outputs(path: Path, images: np.ndarray, threads: int | None = None) -> dict[str, np.ndarray]:
    from vopt.runtimes.ort import run_batches, runner

    run = runner(path, threads=threads)
    import onnx

    name = onnx.load(str(path), load_external_data=False).graph.input[0].name
    return run_batches(run, name, [images], static_batch=_static_batch(path))


def ov_compiled(path: Path, accurate: bool = True) -> Any:
    """An OpenVINO CPU model. `accurate` pins f32 inference: this CPU's default is bf16."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path / "model.xml") if path.is_dir() else str(path))
    config = {"INFERENCE_PRECISION_HINT": "f32"} if accurate else {}
    return core.compile_model(model, "CPU", config)


def ov_outputs(path: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    compiled = ov_compiled(path)
    batch = compiled.inputs[0].get_partial_shape()[0]
    static = batch.get_length() if batch.is_static else None
    names = [o.get_any_name() for o in compiled.outputs]
    collected: dict[str, list[np.ndarray]] = {n: [] for n in names}
    step = static or len(images)
    for i in range(0, len(images), step):
        chunk = images[i : i + step]
        n = len(chunk)
        if static and n < static:
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], static - n, axis=0)])
        res = compiled(chunk)
        for port, name in zip(compiled.outputs, names, strict=True):
            collected[name].append(np.asarray(res[port])[:n])
    return {k: np.concatenate(v) for k, v in collected.items()}


def outputs_of(path: Path, fmt: str, images: np.ndarray) -> dict[str, np.ndarray] | None:
    """Run an artifact here; None when no runtime for it exists on this machine."""
    if fmt == "onnx":
        return ort_outputs(path, images)
    if fmt == "openvino-ir":
        return ov_outputs(path, images)
    return None


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float | None:
    if np.ndim(ref) < 2 or np.shape(ref)[-1] < 2:
        return None
    return float(np.mean(np.argmax(ref, axis=-1) == np.argmax(out, axis=-1)))


def compare(ref: dict[str, np.ndarray], out: dict[str, np.ndarray], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Per-output parity. Outputs in `skip` are per-query detection outputs (top-k order is not stable):
    they are compared as matched detections, as export parity and validate do."""
    from vopt.validate.reference import compare_outputs

    outputs = compare_outputs(ref, {k: np.asarray(v, np.float32) for k, v in out.items()}, skip=skip)["outputs"]
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
