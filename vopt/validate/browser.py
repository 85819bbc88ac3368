"""`validate: {runtime: browser}`: the artifact on each onnxruntime-web EP in headless Chromium, against the
reference."""

from __future__ import annotations

from typing import Any

import numpy as np


def validate_in_browser(
    artifact: Any, images: np.ndarray, ref: dict[str, np.ndarray], section: Any, family: Any
) -> dict[str, Any]:
    """`validate: {runtime: browser}`: per-EP max abs diff, cosine and timing, and per-EP gates."""
    from vopt.runtimes.base import fixed_batch
    from vopt.runtimes.browser import require, run_eps
    from vopt.validate.gates import evaluate
    from vopt.validate.reference import compare_outputs, unordered
    from vopt.validate.tasks import task_metrics

    require()
    static = fixed_batch(artifact.io.inputs[0].shape[0])  # -1 or 0 is open
    batches = [images[i : i + section.batch] for i in range(0, len(images), section.batch)]
    results = run_eps(artifact.path, batches, artifact.io.inputs[0].name, static_batch=static)
    report: dict[str, Any] = {"eps": {}, "gates": []}
    for ep, res in results.items():
        entry = {k: v for k, v in res.items() if k != "outputs"}
        if res["status"] == "ok":
            # per-query outputs (the family's, or the post-processing's boxes) are matched, as validate does
            metrics = compare_outputs(ref, res["outputs"], skip=unordered(family, artifact))
            entry.update(
                metrics=metrics["outputs"],
                worst_cosine=metrics["worst_cosine"],
                worst_max_abs_diff=metrics["worst_max_abs_diff"],
            )
            tm, _ = task_metrics(
                artifact.meta.get("task"), family, ref, res["outputs"], section.score_threshold
            )
            entry["task_metrics"] = tm
            for gate in evaluate(section.gates, {"outputs": metrics["outputs"], **tm}):
                report["gates"].append({**gate, "metric": f"{ep}/{gate['metric']}"})
        report["eps"][ep] = entry
    report["summary"] = ", ".join(_ep_summary(ep, e) for ep, e in report["eps"].items())
    return report


def _ep_summary(ep: str, entry: dict[str, Any]) -> str:
    if entry["status"] != "ok":
        return f"{ep} {entry['status']}"
    off = entry["runtime_info"]["placement"]["nodes_off_ep"]
    return f"{ep} cosine {entry['worst_cosine']:.6f}" + (
        f" ({off} nodes placed on CPU by ORT)" if off and ep != "wasm" else ""
    )
