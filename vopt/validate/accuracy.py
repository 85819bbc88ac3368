"""Accuracy against ground-truth labels, and the intervals of every classification rate.

Rates are fractions of images, so each comes with its count and a 95% Wilson interval (vopt.validate.stats).
`top1_drop` is in percentage points (reference top-1 accuracy minus the artifact's); its interval is the
paired one, from the images that one of the two got right and the other wrong."""

from __future__ import annotations

from typing import Any

import numpy as np

from vopt.validate.classification import has_top5
from vopt.validate.stats import paired_difference, wilson


def _2d(x: np.ndarray) -> np.ndarray:
    a = np.asarray(x, np.float64)
    return a.reshape(a.shape[0], -1)


def topk_hits(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per image: is the label among the k highest scores?"""
    o = _2d(logits)
    k = min(k, o.shape[1])
    top = np.argsort(-o, axis=1, kind="stable")[:, :k]
    return (top == np.asarray(labels)[:, None]).any(axis=1)


def _ci(successes: float, n: int) -> list[float]:
    lo, hi = wilson(successes, n)
    return [round(lo, 6), round(hi, 6)]


def agreement_intervals(ref: np.ndarray, out: np.ndarray, n: int) -> dict[str, dict[str, Any]]:
    """Intervals of top-1 / top-5 agreement with the reference; `n` is the number of distinct images."""
    r, o = _2d(ref), _2d(out)
    rates = [("top1_agreement", r.argmax(1) == o.argmax(1))]
    if has_top5(r):
        rates.append(("top5_agreement", topk_hits(o, r.argmax(1), 5)))
    return {name: {"n": n, "ci95": _ci(float(hits.mean()) * n, n)} for name, hits in rates}


def label_metrics(
    ref: np.ndarray, out: np.ndarray, labels: list[int], n: int | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Top-1/top-5 accuracy of the reference and the artifact, the drop in points, and their intervals.
    `n` (distinct images) sizes the intervals when some images were repeated with random crops."""
    y = np.asarray(labels)
    n = n or len(y)
    scale = n / len(y)
    m: dict[str, Any] = {}
    iv: dict[str, dict[str, Any]] = {}
    for k in (1, 5) if has_top5(ref) else (1,):
        r_hit, o_hit = topk_hits(ref, y, k), topk_hits(out, y, k)
        m[f"reference_top{k}_accuracy"] = float(r_hit.mean())
        m[f"top{k}_accuracy"] = float(o_hit.mean())
        m[f"top{k}_drop"] = round(100 * (float(r_hit.mean()) - float(o_hit.mean())), 4)
        iv[f"reference_top{k}_accuracy"] = {"n": n, "ci95": _ci(float(r_hit.sum()) * scale, n)}
        iv[f"top{k}_accuracy"] = {"n": n, "ci95": _ci(float(o_hit.sum()) * scale, n)}
        lost, gained = int((r_hit & ~o_hit).sum()), int((~r_hit & o_hit).sum())
        lo, hi = paired_difference(round(lost * scale), round(gained * scale), n)
        iv[f"top{k}_drop"] = {
            "n": n,
            "ci95": [round(100 * lo, 4), round(100 * hi, 4)],
            "unit": "points",
            "lost": lost,
            "gained": gained,
        }
    m["labelled_images"] = len(y)
    return m, iv


def accuracy_line(m: dict[str, Any], iv: dict[str, Any]) -> str:
    """`top-1 88.0% -> 87.0% (-1.0 pt, 95% CI -3.2..+1.1; n=100), top-5 ...` for build output and reports."""
    parts = []
    for k in (1, 5) if "top5_drop" in iv else (1,):
        d = iv[f"top{k}_drop"]["ci95"]
        parts.append(
            f"top-{k} {100 * m[f'reference_top{k}_accuracy']:.1f}% -> {100 * m[f'top{k}_accuracy']:.1f}% "
            f"(drop {m[f'top{k}_drop']:+.1f} pt, 95% CI {d[0]:+.1f}..{d[1]:+.1f})"
        )
    return "; ".join(parts) + f", n={iv['top1_drop']['n']}"


RANDOM_NOTE = (
    "RANDOM weights: agreement with the reference on random weights is not evidence of accuracy "
    "(near-tied scores flip or agree by chance); use pretrained weights and labelled images for that"
)


# Tasks whose outputs may be per-position class scores (a text recognizer is a feature extractor to vopt).
SEQUENCE_TASKS = (None, "image-classification", "feature-extraction")


def evidence(
    task: str | None, ref: dict[str, np.ndarray], out: dict[str, np.ndarray], files: list[Any], labels: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Classification extras for gates and reports: accuracy against labels (when every image has one) and
    the intervals of every rate; for an output of per-position class scores (`[B, T, C]`, vopt.validate.
    sequence), position and sequence agreement. (metrics, intervals); both empty for other tasks."""
    if task in SEQUENCE_TASKS:
        from vopt.validate.sequence import sequence_metrics, sequence_output

        seq = sequence_output(ref)
        if seq is not None and seq in out and np.shape(out[seq]) == np.shape(ref[seq]):
            return sequence_metrics(ref[seq], out[seq])
    if task not in (None, "image-classification"):
        return {}, {}
    name = "logits" if "logits" in ref else next(iter(ref), None)
    if name is None or name not in out or np.ndim(ref[name]) != 2:
        return {}, {}
    n = len(set(files)) or len(ref[name])
    intervals = agreement_intervals(ref[name], out[name], n)
    metrics: dict[str, Any] = {}
    y = labels.of(list(files)) if labels is not None else None
    if y is not None and len(y) == len(ref[name]):
        m, iv = label_metrics(ref[name], out[name], y, n)
        metrics.update(m)
        intervals.update(iv)
    return metrics, intervals
