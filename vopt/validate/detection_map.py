"""mAP50-95 and mAP50 through a maintained evaluator (pycocotools' COCOeval, the `yolo` extra).

Two uses:
- against the reference: the fp32 model's detections (at the validation score threshold) are the ground
  truth and the artifact's detections (all of them, with their scores) the predictions. 1.0 when the artifact
  finds the same boxes with the same ranking; it falls as boxes move, vanish or appear. Needs no labels.
- against labels (COCO JSON or YOLO txt, vopt.datasets.detection_labels): the real mAP of the reference and
  of the artifact, the drop in points, and its 95% interval from a bootstrap over images (the same resampled
  images for both, so the interval is that of the paired difference).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

BOOTSTRAP = 200
MAX_DETS = 300  # COCOeval's per-image cap: at least every detection a graph may give (export.max_detections)


def ordered_corners(boxes: np.ndarray) -> np.ndarray:
    """x1 <= x2 and y1 <= y2 (an untrained head may regress flipped boxes)."""
    x, y = np.sort(boxes[:, [0, 2]], axis=1), np.sort(boxes[:, [1, 3]], axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pycocotools") is not None


def coco_map(
    truth: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], preds: Sequence[Any]
) -> dict[str, float]:
    """mAP50-95 and mAP50 of `preds` against `truth` (per image: boxes xyxy, classes, crowd flags)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    classes: set[int] = set()
    for i, ((boxes, labels, crowd), pred) in enumerate(zip(truth, preds, strict=True)):
        images.append({"id": i})
        for b, c, cr in zip(
            ordered_corners(np.asarray(boxes, np.float64).reshape(-1, 4)), labels, crowd, strict=True
        ):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), w, h],
                    "area": max(w, 0.0) * max(h, 0.0),
                    "iscrowd": int(cr),
                }
            )
            classes.add(int(c))
        for b, c, s in zip(
            ordered_corners(np.asarray(pred.boxes, np.float64).reshape(-1, 4)),
            pred.labels,
            pred.scores,
            strict=True,
        ):
            dets.append(
                {
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                    "score": float(s),
                }
            )
            classes.add(int(c))
    if not anns:
        return {"map50_95": float("nan"), "map50": float("nan")}
    with contextlib.redirect_stdout(io.StringIO()):  # COCOeval prints its progress and table
        gt = COCO()
        gt.dataset = {
            "images": images,
            "annotations": anns,
            "categories": [{"id": c + 1, "name": str(c)} for c in sorted(classes)],
        }
        gt.createIndex()
        if not dets:
            return {"map50_95": 0.0, "map50": 0.0}
        found = gt.loadRes(dets)
        ev = COCOeval(gt, found, "bbox")
        ev.params.maxDets = [1, 10, MAX_DETS]
        ev.evaluate()
        ev.accumulate()
    # precision [IoU thresholds, recall points, classes, areas, max dets]: area "all", the last cap (what
    # COCOeval.summarize does, but at MAX_DETS where summarize's first line is fixed at 100)
    precision = ev.eval["precision"][:, :, :, 0, -1]

    def mean(p: np.ndarray) -> float:
        valid = p[p > -1]
        return float(valid.mean()) if valid.size else 0.0

    return {"map50_95": mean(precision), "map50": mean(precision[0])}


def against_reference(ref: Sequence[Any], out: Sequence[Any]) -> dict[str, float]:
    """mAP of the artifact's detections with the reference's as ground truth (`*_vs_reference`)."""
    truth = [(r.boxes, r.labels, np.zeros(len(r.labels), bool)) for r in ref]
    m = coco_map(truth, out)
    return {"map50_95_vs_reference": m["map50_95"], "map50_vs_reference": m["map50"]}


def against_labels(
    ref: Sequence[Any], out: Sequence[Any], labels: Any, files: Sequence[Any], seed: int = 0
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Real mAP50-95 / mAP50 of the reference and the artifact on labelled images, the drop in points and
    its 95% bootstrap interval. (metrics, intervals)."""
    truth = [(labels.boxes[f], labels.classes[f], labels.crowd[f]) for f in files]
    r, o = coco_map(truth, ref), coco_map(truth, out)
    m: dict[str, Any] = {
        "reference_map50_95": r["map50_95"],
        "map50_95": o["map50_95"],
        "map50_95_drop": round(100 * (r["map50_95"] - o["map50_95"]), 4),
        "reference_map50": r["map50"],
        "map50": o["map50"],
        "map50_drop": round(100 * (r["map50"] - o["map50"]), 4),
        "labelled_images": len(files),
    }
    rng = np.random.default_rng(seed)
    drops: dict[str, list[float]] = {"map50_95_drop": [], "map50_drop": []}
    n = len(files)
    for _ in range(BOOTSTRAP):
        pick = rng.integers(0, n, n)
        rb, ob = (
            coco_map([truth[i] for i in pick], [ref[i] for i in pick]),
            coco_map([truth[i] for i in pick], [out[i] for i in pick]),
        )
        for key in drops:
            metric = key.removesuffix("_drop")
            drops[key].append(100 * (rb[metric] - ob[metric]))
    iv = {
        key: {
            "n": n,
            "ci95": [round(float(np.nanpercentile(v, 2.5)), 4), round(float(np.nanpercentile(v, 97.5)), 4)],
            "unit": "points",
            "method": f"bootstrap over images ({BOOTSTRAP} resamples)",
        }
        for key, v in drops.items()
    }
    return m, iv


def map_line(m: dict[str, Any], iv: dict[str, Any]) -> str:
    """`mAP50-95 61.2% -> 60.8% (drop +0.4 pt, 95% CI -0.3..+1.2), mAP50 ..., n=100` for reports."""
    parts = []
    for metric, label in (("map50_95", "mAP50-95"), ("map50", "mAP50")):
        d = iv[f"{metric}_drop"]["ci95"]
        parts.append(
            f"{label} {100 * m[f'reference_{metric}']:.1f}% -> {100 * m[metric]:.1f}% "
            f"(drop {m[f'{metric}_drop']:+.1f} pt, 95% CI {d[0]:+.1f}..{d[1]:+.1f})"
        )
    return "; ".join(parts) + f", n={m['labelled_images']}"
