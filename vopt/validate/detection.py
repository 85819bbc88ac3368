"""Detection agreement: match detections, never compare raw query positions.

HF detection heads give `logits` [B, Q, C(+1)] and `pred_boxes` [B, Q, 4] (normalized cx, cy, w, h).
DETR and YOLOS put a no-object class last and score with softmax; RT-DETR and the other focal-loss heads
score with sigmoid and have no no-object class. The family says which (`Family.scoring`; the generic path
reads it from the model's config at load). Queries can reorder under tiny numeric changes (top-k), so
positions mean nothing: each reference detection above the score threshold is matched to an artifact
detection of the same class with IoU >= 0.5, greedily in order of reference score.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Scoring = Literal["softmax-no-object", "sigmoid"]


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] xyxy, normalized
    labels: np.ndarray  # [N]
    scores: np.ndarray  # [N]


def scoring_for(family: Any) -> Scoring:
    """How the family's detector scores its classes (`Family.scoring`); softmax with a no-object class when
    it does not say."""
    return "sigmoid" if getattr(family, "scoring", None) == "sigmoid" else "softmax-no-object"


def cxcywh_to_xyxy(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64)
    cx, cy, w, h = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=-1)


def decode(logits: np.ndarray, boxes: np.ndarray, scoring: Scoring, threshold: float) -> list[Detections]:
    """Per image, the detections whose best class score is at least `threshold`."""
    x = np.asarray(logits, dtype=np.float64)
    if scoring == "sigmoid":
        probs = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        probs = (e / e.sum(axis=-1, keepdims=True))[..., :-1]  # drop no-object
    scores, labels = probs.max(axis=-1), probs.argmax(axis=-1)
    xyxy = cxcywh_to_xyxy(boxes)
    result = []
    for i in range(x.shape[0]):
        keep = scores[i] >= threshold
        result.append(Detections(xyxy[i][keep], labels[i][keep], scores[i][keep]))
    return result


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes: [N, 4] x [M, 4] -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match(ref: Detections, out: Detections, iou_threshold: float = 0.5) -> list[float]:
    """Greedy one-to-one matching, highest reference score first; returns the IoU of each match."""
    ious = iou_matrix(ref.boxes, out.boxes)
    taken = np.zeros(len(out.labels), dtype=bool)
    matched = []
    for i in np.argsort(-ref.scores, kind="stable"):
        ok = (out.labels == ref.labels[i]) & ~taken & (ious[i] >= iou_threshold)
        if not ok.any():
            continue
        j = int(np.argmax(np.where(ok, ious[i], -1.0)))
        taken[j] = True
        matched.append(float(ious[i, j]))
    return matched


def box_agreement(
    ref: list[Detections], out: list[Detections], iou_threshold: float = 0.5
) -> dict[str, float | int]:
    """Recall (matched / reference detections), precision (matched / artifact detections), their
    harmonic mean as `box_agreement`, and the mean IoU of the matched pairs."""
    n_ref = sum(len(d.labels) for d in ref)
    n_out = sum(len(d.labels) for d in out)
    ious = [iou for r, o in zip(ref, out, strict=True) for iou in match(r, o, iou_threshold)]
    n = len(ious)
    recall = n / n_ref if n_ref else 1.0
    precision = n / n_out if n_out else 1.0
    agreement = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {
        "box_agreement": agreement,
        "box_recall": recall,
        "box_precision": precision,
        "box_mean_iou": float(np.mean(ious)) if ious else (1.0 if not n_ref and not n_out else 0.0),
        "reference_detections": n_ref,
        "artifact_detections": n_out,
        "matched_detections": n,
    }


def detection_metrics(
    ref: dict[str, np.ndarray], out: dict[str, np.ndarray], family: Any, threshold: float
) -> dict[str, float | int | str]:
    scoring = scoring_for(family)
    r = decode(ref["logits"], ref["pred_boxes"], scoring, threshold)
    o = decode(out["logits"], out["pred_boxes"], scoring, threshold)
    return {**box_agreement(r, o), "score_threshold": threshold, "scoring": scoring}


def postprocessed_detections(outputs: dict[str, np.ndarray], threshold: float) -> list[Detections]:
    """Per image, in-graph post-processed detections (`boxes`, `scores`, `labels`; label -1 is padding) at or
    above `threshold`. IoU does not care about box units, so pixel boxes need no normalizing."""
    result = []
    for b, s, lab in zip(outputs["boxes"], outputs["scores"], outputs["labels"], strict=True):
        keep = (np.asarray(s) >= threshold) & (np.asarray(lab) >= 0)
        result.append(Detections(np.asarray(b, np.float64)[keep], np.asarray(lab)[keep], np.asarray(s)[keep]))
    return result
