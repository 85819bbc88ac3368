"""Detection post-processing in the graph (`export.postprocess`): DETR-style `logits` + `pred_boxes` become
`boxes` (xyxy in input pixels), `scores` and `labels` for the top-k queries, with scores below the threshold
zeroed (label -1). The same steps in numpy (`apply`) post-process the PyTorch reference, so validation
compares like with like."""

from __future__ import annotations

from typing import Any

import numpy as np

OUTPUTS = ("boxes", "scores", "labels")


def settings(
    scoring: str, input_hw: list[int], max_detections: int, score_threshold: float
) -> dict[str, Any]:
    return {
        "scoring": scoring,
        "input_hw": list(input_hw),
        "max_detections": max_detections,
        "score_threshold": score_threshold,
        "outputs": list(OUTPUTS),
        "boxes": "xyxy, input pixels",
    }


def wrap(model: Any, cfg: dict[str, Any]) -> Any:
    """`model` maps pixels to (logits, pred_boxes); the result maps pixels to (boxes, scores, labels)."""
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
            keep = scores >= threshold
            return (
                xyxy * keep.unsqueeze(-1),
                scores * keep,
                torch.where(keep, labels, torch.full_like(labels, -1)),
            )

    return _PostProcessed().eval()


def apply(outputs: dict[str, np.ndarray], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The same post-processing on raw `logits`/`pred_boxes` in numpy (for the PyTorch reference)."""
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
    }
