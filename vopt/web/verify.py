"""`vopt verify ARTIFACT --browser`: run an ONNX artifact in headless Chromium and compare with a
reference."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from vopt.core.artifact import Preprocess
from vopt.errors import BackendUnavailable, GateFailed, RecipeError

# Default cosine floors by artifact precision (the browser vs the reference, on real images).
MIN_COSINE = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}


def resolve_artifact(path: Path) -> tuple[Path, Path | None]:
    """The .onnx to verify and, for a build directory, the directory (its manifest names the recipe)."""
    if path.is_dir():
        model = path / "model.onnx"
        if not model.is_file():
            raise RecipeError(
                f"{path}: no model.onnx in this build directory (only ONNX artifacts run in a browser)"
            )
        return model, path if (path / "manifest.json").is_file() else None
    if not path.is_file():
        raise RecipeError(f"{path}: no such file")
    if path.suffix != ".onnx":
        raise RecipeError(f"{path}: the browser runner takes .onnx artifacts")
    manifest = path.parent / "manifest.json"
    return path, path.parent if manifest.is_file() else None


def read_meta(model: Path) -> dict[str, str]:
    import onnx

    proto = onnx.load(str(model), load_external_data=False)
    return {p.key: p.value for p in proto.metadata_props}


def inputs_for(
    model: Path, meta: dict[str, str], data: str | None, samples: int, seed: int
) -> tuple[str, np.ndarray, int | None]:
    """Real images preprocessed by the artifact's own contract (vopt.preprocess metadata)."""
    import onnx

    from vopt.datasets.images import load_batch

    proto = onnx.load(str(model), load_external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    first = next(i for i in proto.graph.input if i.name not in inits)
    dims = [d.dim_param or int(d.dim_value) for d in first.type.tensor_type.shape.dim]
    pre = (
        Preprocess.model_validate(json.loads(meta["vopt.preprocess"]))
        if "vopt.preprocess" in meta
        else Preprocess()
    )
    if len(dims) == 4 and all(isinstance(d, int) and d > 0 for d in dims[2:]):
        pre.size = [int(dims[2]), int(dims[3])]
    images = load_batch(data, pre, samples, seed)
    static = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
    return first.name, images, static


def reference_outputs(
    reference: Path | None,
    build_dir: Path | None,
    model: Path,
    name: str,
    images: np.ndarray,
    static: int | None,
) -> tuple[dict[str, np.ndarray], str]:
    """PyTorch from a recipe or build directory, or ONNX Runtime (Python, CPU) on a reference .onnx or the
    artifact."""
    from vopt.runtimes.base import run_batches
    from vopt.runtimes.ort import runner

    source = reference or build_dir
    if source is not None and (source.is_dir() or source.suffix in (".yaml", ".yml")):
        return _torch_reference(source, images)
    onnx_ref = source if source is not None and source.suffix == ".onnx" else model
    label = "the artifact itself" if onnx_ref == model else str(onnx_ref)
    with runner(onnx_ref) as run:
        out = run_batches(run, name, [images], static_batch=static)
    return out, f"onnxruntime {run.info['onnxruntime']} (Python, CPU EP) on {label}"


def _torch_reference(source: Path, images: np.ndarray) -> tuple[dict[str, np.ndarray], str]:
    from vopt.recipe.models import Recipe
    from vopt.registry import get_source
    from vopt.validate.reference import torch_outputs

    if source.is_dir():
        manifest = source / "manifest.json"
        if not manifest.is_file():
            raise RecipeError(
                f"{source}: no manifest.json, so no recipe to rebuild the PyTorch reference from"
            )
        recipe = Recipe.model_validate(json.loads(manifest.read_text())["recipe"]["resolved"])
        label = f"PyTorch model of build {source}"
    else:
        from vopt.recipe.resolve import load_recipe

        recipe = load_recipe(source).recipe
        label = f"PyTorch model of recipe {source}"
    loaded = get_source(recipe.model.source).load(recipe.model)
    if loaded.module is None:
        raise RecipeError(f"{source}: the model comes from ONNX; pass --reference with a .onnx file instead")
    return torch_outputs(loaded.module, loaded.family, images), label


def verify(
    artifact: Path,
    *,
    reference: Path | None,
    eps: list[str],
    data: str | None,
    samples: int,
    seed: int,
    min_cosine: float | None,
    max_abs_diff: float | None,
) -> dict[str, Any]:
    from vopt.runtimes.browser import require, run_eps
    from vopt.validate.reference import compare_outputs

    require()
    model, build_dir = resolve_artifact(artifact)
    meta = read_meta(model)
    precision = meta.get("vopt.precision", "fp32")
    floor = min_cosine if min_cosine is not None else MIN_COSINE.get(precision, 0.99)
    name, images, static = inputs_for(model, meta, data, samples, seed)
    ref, ref_label = reference_outputs(reference, build_dir, model, name, images, static)
    results = run_eps(
        model, [images[i : i + 1] for i in range(len(images))], name, eps=tuple(eps), static_batch=static
    )
    report: dict[str, Any] = {
        "artifact": str(model),
        "precision": precision,
        "target": meta.get("vopt.target"),
        "reference": ref_label,
        "samples": len(images),
        "min_cosine": floor,
        "max_abs_diff": max_abs_diff,
        "eps": {},
    }
    note = _browser_note(meta.get("vopt.target"))
    if note:
        report["note"] = note
    failures = []
    for ep, res in results.items():
        entry = {k: v for k, v in res.items() if k != "outputs"}
        if res["status"] == "ok":
            m = compare_outputs(ref, res["outputs"])
            entry.update(metrics=m["outputs"], cosine=m["worst_cosine"], max_abs_diff=m["worst_max_abs_diff"])
            bad = m["worst_cosine"] < floor or (
                max_abs_diff is not None and m["worst_max_abs_diff"] > max_abs_diff
            )
            entry["passed"] = not bad
            if bad:
                failures.append(
                    f"{ep}: cosine {m['worst_cosine']:.6f} (floor {floor}), "
                    f"max abs diff {m['worst_max_abs_diff']:.3g}"
                    + (f" (limit {max_abs_diff:g})" if max_abs_diff is not None else "")
                )
        elif res["status"] == "failed":
            failures.append(f"{ep}: {res['reason']}")
        report["eps"][ep] = entry
    report["verified_eps"] = [ep for ep, e in report["eps"].items() if e.get("passed")]
    report["status"] = "failed" if failures else ("ok" if report["verified_eps"] else "unverified")
    report["failures"] = failures
    return report


def _browser_note(target: str | None) -> str | None:
    """What the artifact's own target says a browser check here cannot show."""
    from vopt.registry import TARGETS, get_target

    return get_target(target).browser_note if target in TARGETS else None


def raise_for(report: dict[str, Any]) -> None:
    if report["failures"]:
        raise GateFailed(
            f"the browser output does not match the reference ({report['reference']})",
            lines=report["failures"],
        )
    if not report["verified_eps"]:
        reasons = [f"{ep}: {e.get('reason', e['status'])}" for ep, e in report["eps"].items()]
        raise BackendUnavailable(
            "no requested execution provider could verify the artifact here", lines=reasons
        )
