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
    """Pairwise IoU of xyxy boxes: [N, 4] x [M, 4] -> [N, M]. Corners are put in order first: a head may
    regress x2 < x1 (untrained distances), and the same flipped box on both sides is the same output."""
    a = ordered_corners(np.asarray(a, np.float64).reshape(-1, 4))
    b = ordered_corners(np.asarray(b, np.float64).reshape(-1, 4))
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


def ordered_corners(boxes: np.ndarray) -> np.ndarray:
    x = np.sort(boxes[:, [0, 2]], axis=1)
    y = np.sort(boxes[:, [1, 3]], axis=1)
    return np.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], axis=1)


def match(ref: Detections, out: Detections, iou_threshold: float = 0.5) -> list[float]:
    """Greedy one-to-one matching, highest reference score first; returns the IoU of each match."""
    return [iou for _i, _j, iou in match_pairs(ref, out, iou_threshold)]


def match_pairs(ref: Detections, out: Detections, iou_threshold: float = 0.5) -> list[tuple[int, int, float]]:
    """(reference index, artifact index, IoU) of each match: same label, IoU >= threshold, one-to-one,
    greedily in order of reference score."""
    ious = iou_matrix(ref.boxes, out.boxes)
    taken = np.zeros(len(out.labels), dtype=bool)
    matched = []
    for i in np.argsort(-np.asarray(ref.scores), kind="stable"):
        ok = (out.labels == ref.labels[i]) & ~taken & (ious[i] >= iou_threshold)
        if not ok.any():
            continue
        j = int(np.argmax(np.where(ok, ious[i], -1.0)))
        taken[j] = True
        matched.append((int(i), j, float(ious[i, j])))
    return matched


def box_agreement(
    ref: list[Detections], out: list[Detections], iou_threshold: float = 0.5
) -> dict[str, float | int]:
    """Recall (matched / reference detections), precision (matched / artifact detections), their
    harmonic mean as `box_agreement`, and the mean IoU of the matched pairs."""
    n_ref = sum(len(d.labels) for d in ref)
    n_out = sum(len(d.labels) for d in out)
    pairs = [(r, o, p) for r, o in zip(ref, out, strict=True) for p in match_pairs(r, o, iou_threshold)]
    ious = [p[2] for _r, _o, p in pairs]
    score_errors = [abs(float(r.scores[p[0]]) - float(o.scores[p[1]])) for r, o, p in pairs]
    n = len(ious)
    recall = n / n_ref if n_ref else 1.0
    precision = n / n_out if n_out else 1.0
    agreement = 2 * recall * precision / (recall + precision) if recall + precision else 0.0
    return {
        "box_agreement": agreement,
        "box_recall": recall,
        "box_precision": precision,
        "box_mean_iou": float(np.mean(ious)) if ious else (1.0 if not n_ref and not n_out else 0.0),
        "score_mean_abs_error": float(np.mean(score_errors)) if score_errors else 0.0,
        "score_max_abs_error": float(np.max(score_errors)) if score_errors else 0.0,
        "reference_detections": n_ref,
        "artifact_detections": n_out,
        "matched_detections": n,
        "missing_detections": n_ref - n,
        "extra_detections": n_out - n,
    }


def detection_metrics(
    ref: dict[str, np.ndarray], out: dict[str, np.ndarray], family: Any, threshold: float
) -> dict[str, float | int | str]:
    scoring = scoring_for(family)
    r = decode(ref["logits"], ref["pred_boxes"], scoring, threshold)
    o = decode(out["logits"], out["pred_boxes"], scoring, threshold)
    return {**box_agreement(r, o), "score_threshold": threshold, "scoring": scoring}


def postprocessed_detections(outputs: dict[str, np.ndarray], threshold: float) -> list[Detections]:
    """Per image, in-graph post-processed detections (vopt.models.postprocess's contract: `boxes`, `scores`,
    `labels`, `num_detections`; label -1 is padding) at or above `threshold`. IoU does not care about box
    units, so pixel boxes need no normalizing."""
    result = []
    for b, s, lab in zip(outputs["boxes"], outputs["scores"], outputs["labels"], strict=True):
        keep = (np.asarray(s) >= threshold) & (np.asarray(lab) >= 0)
        result.append(Detections(np.asarray(b, np.float64)[keep], np.asarray(lab)[keep], np.asarray(s)[keep]))
    return result


def detections_of(
    family: Any, outputs: dict[str, np.ndarray], threshold: float
) -> tuple[list[Detections], str] | None:
    """The detections in a model's outputs, and how they were read: the post-processing contract
    (vopt.models.postprocess), the family's own raw head (`Family.detections`, e.g. YOLO's), or DETR-style
    `logits` + `pred_boxes`; None when the outputs are none of these."""
    if all(k in outputs for k in ("boxes", "scores", "labels")):
        return postprocessed_detections(outputs, threshold), "in-graph post-processing"
    own = family.detections(outputs, threshold) if hasattr(family, "detections") else None
    if own is not None:
        return [Detections(*found) for found in own], f"{family.name} head"
    if "logits" in outputs and "pred_boxes" in outputs:
        scoring = scoring_for(family)
        return decode(outputs["logits"], outputs["pred_boxes"], scoring, threshold), scoring
    return None


def detection_task_metrics(
    family: Any, ref: dict[str, np.ndarray], out: dict[str, np.ndarray], threshold: float
) -> tuple[dict[str, Any], list[str]]:
    """Box agreement of matched detections (same label, IoU >= 0.5), their score error, missing and extra
    boxes, and mAP50-95 / mAP50 of the artifact's detections scored against the reference's."""
    notes: list[str] = []
    r, o = detections_of(family, ref, threshold), detections_of(family, out, threshold)
    if r is None or o is None:
        notes.append(
            "no detection outputs vopt reads (post-processed boxes, a family head, logits + pred_boxes)"
        )
        return {}, notes
    m: dict[str, Any] = {**box_agreement(r[0], o[0]), "score_threshold": threshold, "scoring": r[1]}
    if not m["reference_detections"]:
        notes.append(
            f"no reference detection scored >= {threshold}: box agreement is vacuous "
            "(random weights?); lower validate.score_threshold"
        )
        return m, notes
    from vopt.validate import detection_map

    if detection_map.available():
        everything = detections_of(family, out, 0.0)  # every detection the artifact gives, ranked by score
        m.update(detection_map.against_reference(r[0], everything[0] if everything else o[0]))
    else:
        notes.append("mAP against the reference needs pycocotools: pip install 'vopt[yolo]'")
    return m, notes


def detection_evidence(
    family: Any, ref: dict[str, np.ndarray], out: dict[str, np.ndarray], files: list[Any], labels: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    """With ground-truth boxes (vopt.datasets.detection_labels) for the images: real mAP50-95 and mAP50 of
    the reference and the artifact, the drop in points and its 95% bootstrap interval. Every detection the
    outputs give counts (ranked by score). Images repeated as augmented crops are left out (boxes moved).
    (metrics, intervals); both empty without labels."""
    if labels is None:
        return {}, {}
    from vopt.validate import detection_map

    if not detection_map.available():
        return {"map_note": "mAP against labels needs pycocotools: pip install 'vopt[yolo]'"}, {}
    r, o = detections_of(family, ref, 0.0), detections_of(family, out, 0.0)
    if r is None or o is None:
        return {}, {}
    first = sorted({f: i for i, f in reversed(list(enumerate(files)))}.values())
    kept = [i for i in first if files[i] in labels.boxes]
    if not kept:
        return {}, {}
    return detection_map.against_labels(
        [r[0][i] for i in kept], [o[0][i] for i in kept], labels, [files[i] for i in kept]
    )
