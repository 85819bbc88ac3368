"""Task metrics chosen by the model's task, and the one 'agreement' number reports plot."""

from __future__ import annotations

from typing import Any

import numpy as np

# The headline agreement of each task, in order of preference (reports and `vopt compare`).
HEADLINE = ("top1_agreement", "box_agreement", "miou", "centered_cosine", "cosine")


def task_metrics(
    task: str | None,
    family: Any,
    ref: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    score_threshold: float,
) -> tuple[dict[str, Any], list[str]]:
    """Top-level metrics for gates (e.g. `top1_agreement`), and notes on what could not be measured."""
    notes: list[str] = []
    if task == "text-to-image":  # a pipeline's final images (vopt.validate.images)
        from vopt.validate.images import pipeline_metrics

        return pipeline_metrics(ref, out), notes
    if task == "object-detection":  # matched detections, whichever way the outputs carry them
        from vopt.validate.detection import detection_task_metrics

        return detection_task_metrics(family, ref, out, score_threshold)
    name = "logits" if "logits" in ref else next(iter(ref), None)
    if name is None or name not in out:
        return {}, notes
    if task == "semantic-segmentation":
        # [B, C, H, W] scores, or the [B, H, W] label maps validate keeps of a large output (validate/run.py)
        maps = np.ndim(ref[name]) == 3 and np.asarray(ref[name]).dtype.kind in "iu"
        if np.ndim(ref[name]) != 4 and not maps:
            notes.append(f"`{name}` is not [B, C, H, W]: no mIoU")
            return {}, notes
        from vopt.validate.segmentation import segmentation_metrics

        return segmentation_metrics(ref[name], out[name]), notes
    if task in (None, "image-classification"):
        if np.ndim(ref[name]) != 2:
            notes.append(f"`{name}` is not [B, classes]: no top-k agreement")
            return {}, notes
        from vopt.validate.classification import classification_metrics

        return classification_metrics(ref[name], out[name]), notes
    return {}, notes


def headline(validation: dict[str, Any] | None) -> tuple[str, float] | None:
    """The most meaningful agreement number in a validate report: (metric name, value)."""
    if not validation:
        return None
    task = validation.get("task_metrics") or {}
    for name in HEADLINE:
        if isinstance(task.get(name), (int, float)):
            return name, float(task[name])
    outputs = validation.get("metrics") or {}
    for name in HEADLINE:
        values = [
            m[name] for m in outputs.values() if isinstance(m, dict) and isinstance(m.get(name), (int, float))
        ]
        if values:
            return name, float(min(values))
    return None
