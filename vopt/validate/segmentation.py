"""Segmentation agreement: mIoU between the reference's and the artifact's argmax label maps."""

from __future__ import annotations

import numpy as np


def label_maps(logits: np.ndarray) -> np.ndarray:
    """[B, C, H, W] class scores -> [B, H, W] labels (label maps already, as integers, pass through)."""
    arr = np.asarray(logits)
    if arr.ndim == 3 and arr.dtype.kind in "iu":
        return arr
    return arr.argmax(axis=1)


def miou(ref_labels: np.ndarray, out_labels: np.ndarray) -> dict[str, float]:
    """IoU per class over the whole set (intersections and unions summed over images), averaged over
    the classes that appear in either map. Also the plain fraction of pixels with the same label."""
    r = np.asarray(ref_labels).reshape(-1)
    o = np.asarray(out_labels).reshape(-1)
    if r.shape != o.shape:
        raise ValueError(f"label maps differ in shape: {np.shape(ref_labels)} vs {np.shape(out_labels)}")
    classes = np.union1d(np.unique(r), np.unique(o))
    ious = []
    for c in classes:
        rc, oc = r == c, o == c
        union = np.count_nonzero(rc | oc)
        ious.append(np.count_nonzero(rc & oc) / union)
    return {
        "miou": float(np.mean(ious)) if ious else 1.0,
        "pixel_agreement": float(np.mean(r == o)) if r.size else 1.0,
        "classes": int(len(classes)),
    }


def segmentation_metrics(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    return miou(label_maps(ref), label_maps(out))
