"""Detection post-processing in the graph, with one output contract for every detector:

- `boxes` [B, K, 4]: x1, y1, x2, y2 in input pixels;
- `scores` [B, K]: sorted high to low;
- `labels` [B, K]: int64 class index, -1 for padding;
- `num_detections` [B]: int64, how many of the K rows are detections;

K = `export.max_detections`; rows past `num_detections` are zero (label -1). Two ways to get there:

- `export.postprocess: true` (DETR, RT-DETR, YOLOS: `kind: topk`): `logits` + `pred_boxes` per query are
  scored (softmax without the no-object class, or sigmoid), the top K queries kept and scores below
  `score_threshold` dropped. The same steps in numpy (`apply`) post-process the PyTorch reference.
- `export.nms: true` (YOLO's anchor head: `kind: nms`): ONNX NonMaxSuppression in the graph
  (vopt.models.nms), with `iou_threshold`, `score_threshold` and `agnostic`; the PyTorch reference goes
  through Ultralytics' own `non_max_suppression`.

Validation compares the two sides as matched detections (vopt.validate.detection)."""

from __future__ import annotations

from typing import Any

import numpy as np

OUTPUTS = ("boxes", "scores", "labels", "num_detections")


def settings(
    scoring: str,
    input_hw: list[int],
    max_detections: int,
    score_threshold: float,
    *,
    kind: str = "topk",
    iou_threshold: float | None = None,
    agnostic: bool = False,
    index_dtype: str = "int64",
) -> dict[str, Any]:
    """What the graph's post-processing does (kept in the artifact's metadata as `postprocess`)."""
    cfg: dict[str, Any] = {
        "kind": kind,
        "scoring": scoring,
        "input_hw": list(input_hw),
        "max_detections": max_detections,
        "score_threshold": score_threshold,
        "outputs": list(OUTPUTS),
        "boxes": "xyxy, input pixels",
        # labels and num_detections: int64, or int32 for a target that binds no int64 (TensorRT)
        "index_dtype": index_dtype,
    }
    if kind == "nms":
        cfg.update(iou_threshold=iou_threshold, agnostic=agnostic, op="NonMaxSuppression")
    return cfg


def wrap(model: Any, cfg: dict[str, Any]) -> Any:
    """`model` maps pixels to its raw outputs; the result maps pixels to the detection contract."""
    if cfg.get("kind") == "nms":
        from vopt.models.nms import wrap as wrap_nms

        wrapped = wrap_nms(model, cfg)
    else:
        wrapped = _wrap_topk(model, cfg)
    return _int32(wrapped) if cfg.get("index_dtype") == "int32" else wrapped


def _int32(model: Any) -> Any:
    """labels and num_detections cast to int32 as they leave the graph."""
    import torch

    class _Int32(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, images):
            boxes, scores, labels, count = self.model(images)
            return boxes, scores, labels.to(torch.int32), count.to(torch.int32)

    return _Int32().eval()


def apply(outputs: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The same post-processing on the raw reference outputs (numpy in, numpy out)."""
    if cfg.get("kind") == "nms":
        from vopt.models.nms import reference

        return reference(next(iter(outputs.values())), cfg)
    return _apply_topk(outputs, cfg)


def _wrap_topk(model: Any, cfg: dict[str, Any]) -> Any:
    """DETR-style `logits` + `pred_boxes` -> the contract: scored, top K queries, thresholded."""
    import torch

    h, w = cfg["input_hw"]
    k, threshold, sigmoid = cfg["max_detections"], cfg["score_threshold"], cfg["scoring"] == "sigmoid"

    class _PostProcessed(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.register_buffer("scale", torch.tensor([w, h, w, h], dtype=torch.float32))

        def forward(self, pixel_values):
            logits, pred_boxes = self.model(pixel_values)[:2]
            probs = torch.sigmoid(logits) if sigmoid else torch.softmax(logits, dim=-1)[..., :-1]
            scores, labels = probs.max(dim=-1)
            top = min(k, int(scores.shape[1]))
            scores, index = scores.topk(top, dim=1)
            labels = labels.gather(1, index)
            boxes = pred_boxes.gather(1, index.unsqueeze(-1).expand(-1, -1, 4))
            cx, cy, bw, bh = boxes.unbind(-1)
            xyxy = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], dim=-1) * self.scale
            keep = scores >= threshold  # scores are sorted, so the kept rows come first
            return (
                xyxy * keep.unsqueeze(-1),
                scores * keep,
                torch.where(keep, labels, torch.full_like(labels, -1)),
                keep.sum(dim=1),
            )

    return _PostProcessed().eval()


def _apply_topk(outputs: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    x = np.asarray(outputs["logits"], np.float64)
    if cfg["scoring"] == "sigmoid":
        probs = 1.0 / (1.0 + np.exp(-x))
    else:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        probs = (e / e.sum(axis=-1, keepdims=True))[..., :-1]
    scores, labels = probs.max(axis=-1), probs.argmax(axis=-1)
    top = min(cfg["max_detections"], scores.shape[1])
    index = np.argsort(-scores, axis=1, kind="stable")[:, :top]
    scores = np.take_along_axis(scores, index, 1)
    labels = np.take_along_axis(labels, index, 1)
    boxes = np.take_along_axis(np.asarray(outputs["pred_boxes"], np.float64), index[..., None], 1)
    h, w = cfg["input_hw"]
    cx, cy, bw, bh = np.moveaxis(boxes, -1, 0)
    xyxy = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1) * np.array([w, h, w, h])
    keep = scores >= cfg["score_threshold"]
    return {
        "boxes": (xyxy * keep[..., None]).astype(np.float32),
        "scores": (scores * keep).astype(np.float32),
        "labels": np.where(keep, labels, -1).astype(np.int64),
        "num_detections": keep.sum(axis=1).astype(np.int64),
    }
