"""export.nms on coreml: the NMS Core ML deploys. The network is converted to an ML Program that gives
what Core ML's NonMaximumSuppression model reads (per anchor: class confidences, and boxes as x, y, w, h
relative to the image), and the two are joined in a pipeline by Ultralytics' own `pipeline_coreml` (the
CoreML export Ultralytics ships, and what Apple's Vision framework runs as VNRecognizedObjectObservation).
The package's outputs are Core ML's: `confidence` [K, classes] and `coordinates` [K, 4] (cx, cy, w, h
relative to the input), with `iouThreshold` and `confidenceThreshold` as optional inputs defaulting to the
recipe's."""

from __future__ import annotations

from typing import Any

# The ML Program's outputs, the NMS model's inputs.
NMS_INPUTS = ("raw_confidence", "raw_coordinates")


def for_nms(wrapped: Any, shape: list[int]) -> Any:
    """`wrapped` maps pixels to YOLO's [1, 4 + nc, N]; the result maps them to ([N, nc'], [N, 4]): class
    scores (padded to a multiple of 80 columns: Core ML's ML Program NMS misreads other widths, Ultralytics
    #22309) and boxes relative to the input size."""
    import torch

    h, w = int(shape[2]), int(shape[3])

    class ForNms(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = wrapped
            self.register_buffer("scale", torch.tensor([1 / w, 1 / h, 1 / w, 1 / h], dtype=torch.float32))

        def forward(self, images):
            pred = self.model(images)[0][0].transpose(0, 1)  # [N, 4 + nc]
            xywh, cls = pred[:, :4], pred[:, 4:]
            pad = (-cls.shape[1]) % 80
            if pad:
                cls = torch.nn.functional.pad(cls, (0, pad))
            return cls, xywh * self.scale

    return ForNms().eval()


def pipeline(mlmodel: Any, post: dict[str, Any], source: Any, shape: list[int]) -> tuple[Any, list[str]]:
    """The ML Program followed by Core ML's NonMaximumSuppression, as one pipeline model; its output names."""
    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    import coremltools as ct
    from ultralytics.utils.export.coreml import pipeline_coreml

    spec = mlmodel.get_spec()
    name = spec.description.input[0].name
    if name != "image":  # Ultralytics' pipeline names its image input "image": renamed there and back here
        ct.utils.rename_feature(spec, name, "image")
        mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    nc = spec.description.output[0].type.multiArrayType.shape[-1]
    labels = (source.meta or {}).get("labels") or []
    names = {i: (labels[i] if i < len(labels) else str(i)) for i in range(nc)}
    anchors = spec.description.output[0].type.multiArrayType.shape[0]
    with _quiet():
        model = pipeline_coreml(
            mlmodel,
            (1, 4 + nc, anchors),
            {"names": names},
            mlmodel=False,
            iou=float(post["iou_threshold"]),
            conf=float(post["score_threshold"]),
            agnostic_nms=bool(post["agnostic"]),
            weights_dir=mlmodel.weights_dir,
        )
    if name != "image":
        joined = model.get_spec()
        ct.utils.rename_feature(joined, "image", name)
        model = ct.models.MLModel(joined, weights_dir=mlmodel.weights_dir, skip_model_load=True)
    return model, ["confidence", "coordinates"]


def _quiet() -> Any:
    import contextlib
    import io

    return contextlib.redirect_stdout(io.StringIO())


def nms_settings(spec: Any) -> dict[str, Any] | None:
    """The NonMaximumSuppression model's settings in a read-back pipeline spec, or None when there is none."""
    if spec.WhichOneof("Type") != "pipeline":
        return None
    for model in spec.pipeline.models:
        if model.WhichOneof("Type") == "nonMaximumSuppression":
            nms = model.nonMaximumSuppression
            return {
                "iou_threshold": round(nms.iouThreshold, 6),
                "confidence_threshold": round(nms.confidenceThreshold, 6),
                "per_class": bool(nms.pickTop.perClass),
                "classes": len(nms.stringClassLabels.vector),
                "models": [m.WhichOneof("Type") for m in spec.pipeline.models],
            }
    return None
