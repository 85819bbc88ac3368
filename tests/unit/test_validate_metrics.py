"""Task metrics and gates on constructed cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vopt.errors import RecipeError
from vopt.models.families.lookup import get_family
from vopt.validate.classification import kl_divergence, top1_agreement, topk_agreement
from vopt.validate.detection import box_agreement, decode, detection_metrics, iou_matrix, scoring_for
from vopt.validate.gates import evaluate, parse_condition
from vopt.validate.segmentation import miou, segmentation_metrics
from vopt.validate.tasks import headline, task_metrics

# --- classification -------------------------------------------------------------------------


def test_top1_agreement_counts_changed_argmax():
    ref = np.array([[3, 1, 0], [0, 2, 1], [1, 0, 5], [0, 0, 1]], np.float32)
    out = ref.copy()
    out[2] = [6, 0, 5]  # sample 2 now picks class 0
    assert top1_agreement(ref, ref) == 1.0
    assert top1_agreement(ref, out) == 0.75


def test_top5_agreement_is_reference_top1_within_artifact_top5():
    ref = np.array([[9, 0, 0, 0, 0, 0, 0], [0, 9, 0, 0, 0, 0, 0]], np.float32)
    # Sample 0: the reference class 0 ranks 6th in the artifact: a top-5 miss. Sample 1: ranks 5th: a hit.
    out = np.array([[1, 7, 6, 5, 4, 3, 0], [7, 1, 6, 5, 4, 0, 0]], np.float32)
    assert top1_agreement(ref, out) == 0.0
    assert topk_agreement(ref, out, 5) == 0.5
    assert topk_agreement(ref[:, :3], out[:, :3], 5) == 1.0  # k capped at the class count


def test_kl_divergence_known_value():
    p, q = np.array([[0.5, 0.5]]), np.array([[0.9, 0.1]])
    expected = 0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1)
    assert kl_divergence(np.log(p), np.log(q)) == pytest.approx(expected, rel=1e-9)
    assert kl_divergence(np.log(p), np.log(p) + 3.0) == pytest.approx(0.0, abs=1e-12)  # shift-invariant


# --- detection --------------------------------------------------------------------------------

BOXES = np.array(
    [[0.2, 0.2, 0.2, 0.2], [0.7, 0.3, 0.2, 0.3], [0.3, 0.7, 0.3, 0.2], [0.75, 0.75, 0.2, 0.2]]
)  # cxcywh


def _detr_outputs(boxes: np.ndarray, labels: list[int], n_classes: int = 3, extra_queries: int = 2):
    """DETR-style outputs: a confident class per real query, no-object for padding queries."""
    q = len(boxes) + extra_queries
    logits = np.full((1, q, n_classes + 1), -5.0)
    logits[0, len(boxes) :, -1] = 5.0  # padding queries say no-object
    for i, c in enumerate(labels):
        logits[0, i, c] = 5.0
    pred = np.vstack([boxes, np.tile([[0.5, 0.5, 0.1, 0.1]], (extra_queries, 1))])[None]
    return {"logits": logits, "pred_boxes": pred}


def test_iou_of_half_shifted_box_is_one_third():
    a = np.array([[0.0, 0.0, 0.2, 0.2]])
    b = np.array([[0.1, 0.0, 0.3, 0.2]])
    assert iou_matrix(a, b)[0, 0] == pytest.approx(1 / 3)
    assert iou_matrix(a, a)[0, 0] == pytest.approx(1.0)


def test_box_agreement_ignores_query_order():
    ref = _detr_outputs(BOXES, [0, 1, 2, 0])
    perm = [3, 5, 0, 2, 4, 1]  # the artifact returns the same detections in another query order
    out = {k: v[:, perm] for k, v in ref.items()}
    m = detection_metrics(ref, out, "detr", 0.5)
    assert (m["reference_detections"], m["artifact_detections"], m["matched_detections"]) == (4, 4, 4)
    assert m["box_agreement"] == 1.0 and m["box_mean_iou"] == pytest.approx(1.0)


def test_one_moved_box_drops_agreement_by_exactly_one_match():
    ref = _detr_outputs(BOXES, [0, 1, 2, 0])
    moved = BOXES.copy()
    moved[1, 0] += 0.15  # shift by 3/4 of its width: IoU 1/7, below 0.5
    out = _detr_outputs(moved, [0, 1, 2, 0])
    m = detection_metrics(ref, out, "detr", 0.5)
    assert m["matched_detections"] == 3
    assert m["box_recall"] == 0.75 and m["box_precision"] == 0.75 and m["box_agreement"] == 0.75
    assert m["box_mean_iou"] == pytest.approx(1.0)  # the three matched boxes did not move


def test_small_shift_still_matches_with_its_iou():
    ref = _detr_outputs(BOXES, [0, 1, 2, 0])
    d, w = 0.02, 0.2  # shift box 0 (width w) sideways by d: IoU = (w - d) / (w + d) = 9/11
    shifted = BOXES.copy()
    shifted[0, 0] += d
    out = _detr_outputs(shifted, [0, 1, 2, 0])
    expected_iou = (w - d) / (w + d)
    m = detection_metrics(ref, out, "detr", 0.5)
    assert m["box_agreement"] == 1.0
    assert m["box_mean_iou"] == pytest.approx((3 + expected_iou) / 4)


def test_class_change_and_extra_detection():
    ref = _detr_outputs(BOXES, [0, 1, 2, 0])
    out = _detr_outputs(BOXES, [0, 1, 1, 0])  # one class flipped: no match
    assert detection_metrics(ref, out, "detr", 0.5)["matched_detections"] == 3
    extra = _detr_outputs(np.vstack([BOXES, [[0.5, 0.5, 0.3, 0.3]]]), [0, 1, 2, 0, 1], extra_queries=1)
    m = detection_metrics(ref, extra, "detr", 0.5)
    assert m["box_recall"] == 1.0 and m["box_precision"] == 0.8
    assert m["box_agreement"] == pytest.approx(2 * 0.8 / 1.8)


def test_score_threshold_and_no_object_class():
    ref = _detr_outputs(BOXES, [0, 1, 2, 0])
    dets = decode(ref["logits"], ref["pred_boxes"], "softmax-no-object", 0.5)
    assert len(dets[0].labels) == 4  # the padding queries' no-object class is never a detection
    assert len(decode(ref["logits"], ref["pred_boxes"], "softmax-no-object", 0.999999)[0].labels) == 0


def test_rt_detr_scores_with_sigmoid_and_has_no_no_object_class():
    assert scoring_for(get_family("rt_detr")) == "sigmoid"
    assert scoring_for(get_family("detr")) == scoring_for(get_family("yolos")) == "softmax-no-object"
    logits = np.array([[[4.0, -4.0], [-4.0, -4.0]]])  # query 0: class 0 (p=0.98); query 1: nothing
    boxes = np.array([[[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]]])
    dets = decode(logits, boxes, "sigmoid", 0.5)
    assert dets[0].labels.tolist() == [0]
    # Read wrongly as softmax with a no-object column, the empty query 1 becomes a detection (p = 0.5).
    assert decode(logits, boxes, "softmax-no-object", 0.5)[0].labels.tolist() == [0, 0]
    m = box_agreement(dets, decode(logits, boxes, "sigmoid", 0.5))
    assert m["box_agreement"] == 1.0


# --- segmentation -----------------------------------------------------------------------------


def test_miou_known_value():
    ref = np.zeros((1, 4, 4), int)
    ref[0, :, 2:] = 1  # left half class 0, right half class 1
    out = ref.copy()
    out[0, :, 2] = 0  # one column of class 1 became class 0
    m = miou(ref, out)
    # class 0: 8 / 12; class 1: 4 / 8
    assert m["miou"] == pytest.approx((8 / 12 + 4 / 8) / 2)
    assert m["pixel_agreement"] == 0.75 and m["classes"] == 2


def test_segmentation_metrics_from_logits():
    labels = np.array([[[0, 1], [2, 2]]])
    logits = np.eye(3)[labels].transpose(0, 3, 1, 2) * 5.0  # one-hot [B, C, H, W]
    assert segmentation_metrics(logits, logits)["miou"] == 1.0
    other = logits.copy()
    other[0, :, 1, 1] = [5.0, 0, 0]  # one pixel 2 -> 0
    # class 0: 1/2, class 1: 1/1, class 2: 1/2
    assert segmentation_metrics(logits, other)["miou"] == pytest.approx(2 / 3)


# --- dispatch and gates -------------------------------------------------------------------------


def test_task_metrics_dispatch_and_headline():
    ref = {"logits": np.array([[1.0, 0.0], [0.0, 1.0]])}
    tm, notes = task_metrics("image-classification", None, ref, ref, 0.5)
    assert tm["top1_agreement"] == 1.0 and not notes
    tm, notes = task_metrics("object-detection", "detr", ref, ref, 0.5)
    assert tm == {} and "pred_boxes" in notes[0]
    assert headline({"task_metrics": {"box_agreement": 0.75}, "metrics": {"logits": {"cosine": 0.9}}}) == (
        "box_agreement",
        0.75,
    )
    assert headline({"metrics": {"a": {"cosine": 0.9}, "b": {"cosine": 0.8}}}) == ("cosine", 0.8)


def test_gates_compare_strings():
    assert parse_condition(">= 0.99") == (">=", 0.99)
    assert parse_condition("<1e-3") == ("<", 1e-3)
    with pytest.raises(RecipeError):
        parse_condition("about 0.9")
    metrics = {
        "outputs": {
            "logits": {"cosine": 0.995, "max_abs_diff": 0.02},
            "boxes": {"cosine": 0.98, "max_abs_diff": 0.1},
        },
        "top1_agreement": 0.9,
    }
    res = {
        g["metric"]: g
        for g in evaluate(
            {
                "cosine": ">=0.99",
                "logits.cosine": ">=0.99",
                "max_abs_diff": "<0.05",
                "top1_agreement": ">=0.9",
            },
            metrics,
        )
    }
    assert res["cosine"]["value"] == 0.98 and not res["cosine"]["passed"]  # worst output decides
    assert res["logits.cosine"]["passed"]
    assert res["max_abs_diff"]["value"] == 0.1 and not res["max_abs_diff"]["passed"]  # worst = largest
    assert res["top1_agreement"]["passed"]
    with pytest.raises(RecipeError, match="top1_agreement"):
        evaluate({"top_1": ">=0.9"}, metrics)


def test_parity_metrics_known_values():
    from vopt.validate.metrics import centered_cosine, cosine, max_abs_diff, sqnr_db

    ref = np.array([[1.0, 2.0], [3.0, 4.0]])
    out = ref + np.array([[0.1, 0.0], [0.0, -0.1]])
    assert max_abs_diff(ref, out) == pytest.approx(0.1)
    assert sqnr_db(ref, out) == pytest.approx(10 * math.log10(30 / 0.02))
    assert sqnr_db(ref, ref) == 999.0  # identical: capped, so the manifest stays valid JSON
    assert cosine(ref, -ref) == pytest.approx(-1.0)
    # Two outputs that differ only by a shared offset look identical raw, and not at all centered.
    a = np.array([[10.0, 10.0], [10.0, 10.1]])
    b = np.array([[10.0, 10.1], [10.0, 10.0]])
    assert cosine(a, b) > 0.9999 and centered_cosine(a, b) == pytest.approx(-1.0)
