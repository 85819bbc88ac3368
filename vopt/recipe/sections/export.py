from __future__ import annotations

from pydantic import Field, model_validator

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import LEGACY_OPSET_MAX, MAX_PARITY_SAMPLES, OPSET_MAX, OPSET_MIN, Dim


class ExportSection(Section):
    opset: int | None = Field(
        default=None,
        ge=OPSET_MIN,
        le=OPSET_MAX,
        description=f"ONNX opset ({OPSET_MIN}-{LEGACY_OPSET_MAX}; up to {OPSET_MAX} with dynamo); the "
        "target's default when omitted.",
    )
    dynamo: bool = Field(
        default=False, description="Use the torch.export-based exporter instead of the legacy one."
    )
    dynamic_batch: bool = Field(default=True, description="Export with a dynamic batch axis.")
    simplify: bool = Field(default=True, description="Simplify with onnxsim, falling back to onnxslim.")
    parity: bool = Field(default=True, description="Check ONNX Runtime against PyTorch on real images.")
    parity_samples: int = Field(
        default=4,
        ge=1,
        le=MAX_PARITY_SAMPLES,
        description=f"Images for the parity check, at most {MAX_PARITY_SAMPLES} (one batch, held in memory).",
    )
    embed_preprocessing: bool = Field(
        default=False,
        description="Put the preprocessing into the graph: the artifact takes raw uint8 NHWC RGB "
        "images, and its metadata says the contract is embedded.",
    )
    # each side 1..16,384 as any input dimension: 0, negative or 10^12 failed at export, after the load
    camera_size: list[Dim] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="With embed_preprocessing: the fixed frame size "
        "[height, width] the device delivers; the graph then also resizes and centre-crops.",
    )
    postprocess: bool = Field(
        default=False,
        description="Detection families: decode boxes (xyxy, input pixels), score and keep the top "
        "max_detections in the graph; outputs boxes, scores, labels.",
    )
    nms: bool = Field(
        default=False,
        description="Detectors whose head needs NMS (YOLO v8/11): end the graph in NonMaxSuppression and the "
        "same outputs as postprocess (boxes, scores, labels, num_detections); an error on a head that needs "
        "none (YOLO26's end-to-end head).",
    )
    max_detections: int = Field(
        default=100, ge=1, le=10000, description="With postprocess or nms: detections kept per image (K)."
    )
    score_threshold: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="With postprocess or nms: lower scores are dropped in the graph (label -1); 0.0 for "
        "postprocess and 0.25 for nms when omitted.",
    )
    iou_threshold: float = Field(
        default=0.7,
        ge=0.0,
        le=1.0,
        description="With nms: a box whose IoU with a kept box of its class is above this is suppressed "
        "(Ultralytics' default 0.7).",
    )
    agnostic: bool = Field(
        default=False, description="With nms: suppress across classes (class-agnostic NMS)."
    )

    @model_validator(mode="after")
    def _one_postprocessing(self) -> ExportSection:
        if self.nms and self.postprocess:
            raise ValueError(
                "nms and postprocess are two ways to the same outputs: nms for heads that need NMS (YOLO), "
                "postprocess for DETR-style heads; set one"
            )
        return self

    @model_validator(mode="after")
    def _exporter_opset(self) -> ExportSection:
        if self.opset is not None and not self.dynamo and self.opset > LEGACY_OPSET_MAX:
            raise ValueError(
                f"opset {self.opset}: the legacy exporter writes opsets {OPSET_MIN}-{LEGACY_OPSET_MAX}; "
                f"set dynamo: true for up to {OPSET_MAX}"
            )
        return self
