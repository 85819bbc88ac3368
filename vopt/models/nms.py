"""Non-maximum suppression in the graph, as standard ONNX (`export.nms: true`), for detectors whose head gives
a box and class scores per anchor (YOLO's [B, 4 + nc, N]: cx, cy, w, h in input pixels, then sigmoid scores).

The graph ends in the detection contract of vopt.models.postprocess: `boxes` [B, K, 4] (x1, y1, x2, y2, input
pixels), `scores` [B, K], `labels` [B, K] (int64, -1 for padding) and `num_detections` [B] (int64), K =
max_detections, detections sorted by score, padding zero.

How: each anchor keeps its best class (as Ultralytics' NMS does), and ONNX `NonMaxSuppression` runs per class
on the class scores masked to that best class (or, `agnostic: true`, on the best score alone), so boxes of
different classes never suppress each other. `_NonMaxSuppression` is a torch.autograd.Function: its forward
runs Ultralytics' own `TorchNMS` (documented to match torchvision's exactly; no torchvision needed), so the
module runs in PyTorch as it will in the runtime, and its `symbolic` writes the ONNX op for the legacy
exporter. The selected (batch, class, anchor) triples are then scattered into a dense [B, N] score map and the
top K taken (TopK, GatherElements): all traceable, all standard ONNX. The module is a child named
`postprocess`, so its nodes are `/postprocess/...` (kept float by int8).

Validation's reference is the PyTorch model's raw output through `ultralytics.utils.nms.non_max_suppression`
(`reference`): the maintained implementation, not this module.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# NonMaxSuppression's `center_point_box`: 0 = two corners per box ([y1, x1, y2, x2]; IoU is the same for
# [x1, y1, x2, y2]).
CORNERS = 0


def _function() -> Any:
    import torch

    class NonMaxSuppression(torch.autograd.Function):
        """ONNX NonMaxSuppression: boxes [B, N, 4] (corners), scores [B, C, N] -> selected [M, 3] int64
        (batch, class, box). Suppresses a box when its IoU with a kept box of the same class is above
        `iou_threshold`; keeps scores above `score_threshold`, at most `max_output` per class."""

        @staticmethod
        def forward(ctx, boxes, scores, max_output, iou_threshold, score_threshold):  # type: ignore[override]
            if torch.jit.is_tracing():  # the exporter writes `symbolic`: tracing TorchNMS's loop only costs
                return torch.zeros((0, 3), dtype=torch.int64)
            from ultralytics.utils.nms import TorchNMS

            k, iou, thr = int(max_output), float(iou_threshold), float(score_threshold)
            rows = []
            for b in range(scores.shape[0]):
                for c in range(scores.shape[1]):
                    idx = torch.nonzero(scores[b, c] > thr).flatten()
                    if idx.numel() == 0:
                        continue
                    keep = TorchNMS.nms(boxes[b, idx], scores[b, c, idx], iou)[:k]
                    sel = idx[keep]
                    rows.append(torch.stack([torch.full_like(sel, b), torch.full_like(sel, c), sel], dim=1))
            return torch.cat(rows) if rows else torch.zeros((0, 3), dtype=torch.int64)

        @staticmethod
        def symbolic(g, boxes, scores, max_output, iou_threshold, score_threshold):  # type: ignore[override]
            return g.op(
                "NonMaxSuppression",
                boxes,
                scores,
                max_output,
                iou_threshold,
                score_threshold,
                center_point_box_i=CORNERS,
            )

    return NonMaxSuppression


_OP: list[Any] = []


def nms_op() -> Any:
    if not _OP:
        from vopt.models.ultralytics_compat import import_ultralytics

        import_ultralytics()  # TorchNMS runs the forward
        _OP.append(_function())
    return _OP[0]


def tail(cfg: dict[str, Any]) -> Any:
    """The module that maps a YOLO head's [B, 4 + nc, N] to the detection contract."""
    import torch

    op = nms_op()
    k, agnostic = int(cfg["max_detections"]), bool(cfg["agnostic"])

    class NmsTail(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("max_output", torch.tensor([k], dtype=torch.int64))
            self.register_buffer("iou_threshold", torch.tensor([cfg["iou_threshold"]], dtype=torch.float32))
            self.register_buffer(
                "score_threshold", torch.tensor([cfg["score_threshold"]], dtype=torch.float32)
            )

        def forward(self, pred):
            cx, cy, w, h = pred[:, 0], pred[:, 1], pred[:, 2], pred[:, 3]
            boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)  # [B, N, 4]
            cls = pred[:, 4:]  # [B, C, N]
            best, label = cls.max(dim=1)  # [B, N]
            if agnostic:
                per_class = best.unsqueeze(1)
            else:  # each anchor's scores masked to its best class: per-class NMS, one class per anchor
                classes = torch.arange(cls.shape[1], device=cls.device).view(1, -1, 1)
                per_class = cls * (classes == label.unsqueeze(1)).to(cls.dtype)
            selected = op.apply(boxes, per_class, self.max_output, self.iou_threshold, self.score_threshold)
            batch, anchors = best.shape[0], best.shape[1]
            flat = selected[:, 0] * anchors + selected[:, 2]
            dense = torch.full_like(best, -1.0).reshape(-1)
            dense = dense.scatter(0, flat, best.reshape(-1).gather(0, flat)).reshape(batch, anchors)
            top, index = dense.topk(min(k, int(anchors)), dim=1)
            valid = top > -0.5
            scores = torch.where(valid, top, torch.zeros_like(top))
            labels = torch.where(valid, label.gather(1, index), torch.full_like(index, -1))
            picked = boxes.gather(1, index.unsqueeze(-1).expand(-1, -1, 4))
            return picked * valid.unsqueeze(-1).to(picked.dtype), scores, labels, valid.sum(dim=1)

    return NmsTail().eval()


def wrap(model: Any, cfg: dict[str, Any]) -> Any:
    """`model` maps pixels to the raw head output (first of its outputs); the result maps pixels to the
    detection contract, with the NMS in a child named `postprocess`."""
    import torch

    class WithNms(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.postprocess = tail(cfg)

        def forward(self, images):
            out = self.model(images)
            return self.postprocess(out[0] if isinstance(out, (tuple, list)) else out)

    return WithNms().eval()


def reference(raw: np.ndarray, cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """The raw head output through Ultralytics' `non_max_suppression` (the maintained implementation,
    torchvision-free), padded to the contract: what the in-graph NMS must agree with."""
    import torch

    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    from ultralytics.utils.nms import non_max_suppression

    k = int(cfg["max_detections"])
    pred = torch.from_numpy(np.ascontiguousarray(raw, dtype=np.float32))
    kept = non_max_suppression(
        pred,
        conf_thres=float(cfg["score_threshold"]),
        iou_thres=float(cfg["iou_threshold"]),
        agnostic=bool(cfg["agnostic"]),
        max_det=k,
        max_time_img=1e9,  # never cut short by its time limit: the reference must be whole
        max_nms=pred.shape[-1],
    )
    k = min(k, pred.shape[-1])
    out = {
        "boxes": np.zeros((len(kept), k, 4), np.float32),
        "scores": np.zeros((len(kept), k), np.float32),
        "labels": np.full((len(kept), k), -1, np.int64),
        "num_detections": np.zeros(len(kept), np.int64),
    }
    for b, det in enumerate(kept):
        d = det.numpy()
        n = len(d)
        out["boxes"][b, :n] = d[:, :4]
        out["scores"][b, :n] = d[:, 4]
        out["labels"][b, :n] = d[:, 5].astype(np.int64)
        out["num_detections"][b] = n
    return out


def raw_head_shape(proto: Any) -> tuple[str, list[int | str]]:
    """The first graph output's name and dims (ints, or the symbolic name of a dynamic one)."""
    out = proto.graph.output[0]
    dims = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
        for d in out.type.tensor_type.shape.dim
    ]
    return out.name, dims


def append_to_onnx(src: Any, dst: Any, cfg: dict[str, Any]) -> str:
    """Join the NMS tail to an ONNX file's raw head output ([B, 4 + nc, N]); writes `dst`, returns the name of
    the output it was joined to. The tail is exported on its own at the source's opset and merged with
    onnx.compose, so the result is one standard ONNX graph."""
    import tempfile
    from pathlib import Path

    import onnx
    import onnx.compose
    import onnx.version_converter
    import torch

    from vopt.errors import BuildError

    outputs = list(cfg["outputs"])  # vopt.models.postprocess's contract

    model = onnx.load(str(src))
    name, dims = raw_head_shape(model)
    if len(dims) != 3 or not isinstance(dims[1], int) or not isinstance(dims[2], int):
        raise BuildError(
            f"{Path(src).name}: output {name} has shape {dims}, not a YOLO head's [B, 4 + classes, anchors]",
            stage="export",
        )
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 17)

    class Holder(torch.nn.Module):  # the child's name gives the nodes their `/postprocess/` scope
        def __init__(self) -> None:
            super().__init__()
            self.postprocess = tail(cfg)

        def forward(self, raw):
            return self.postprocess(raw)

    batch = dims[0] if isinstance(dims[0], int) else 1
    axes = (
        None if isinstance(dims[0], int) else {"vopt_raw": {0: "batch"}, **{o: {0: "batch"} for o in outputs}}
    )
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "nms.onnx"
        with torch.no_grad():
            torch.onnx.export(
                Holder().eval(),
                (torch.zeros(batch, dims[1], dims[2]),),
                str(part),
                dynamo=False,
                opset_version=min(max(opset, 11), 20),
                input_names=["vopt_raw"],
                output_names=outputs,
                dynamic_axes=axes,
                do_constant_folding=True,
            )
        nms = onnx.load(str(part))
    if opset > 20:
        nms = onnx.version_converter.convert_version(nms, opset)
    nms.ir_version = model.ir_version
    merged = onnx.compose.merge_models(model, nms, io_map=[(name, "vopt_raw")], outputs=outputs)
    onnx.checker.check_model(merged)
    onnx.save(merged, str(dst))
    return name
