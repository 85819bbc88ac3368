from __future__ import annotations

from pydantic import Field

from vopt.recipe.sections.base import Section


class ExportSection(Section):
    opset: int | None = Field(default=None, description="ONNX opset; the target's default when omitted.")
    dynamo: bool = Field(default=False, description="Use the torch.export-based exporter instead of the legacy one.")
    dynamic_batch: bool = Field(default=True, description="Export with a dynamic batch axis.")
    simplify: bool = Field(default=True, description="Simplify with onnxsim, falling back to onnxslim.")
    parity: bool = Field(default=True, description="Check ONNX Runtime against PyTorch on real images.")
    parity_samples: int = Field(default=4, ge=1)
    embed_preprocessing: bool = Field(
        default=False, description="Put the preprocessing into the graph: the artifact takes raw uint8 NHWC RGB "
        "images, and its metadata says the contract is embedded.")
    camera_size: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="With embed_preprocessing: the fixed frame size "
        "[height, width] the device delivers; the graph then also resizes and centre-crops.")
    postprocess: bool = Field(
        default=False, description="Detection families: decode boxes (xyxy, input pixels), score and keep the top "
        "max_detections in the graph; outputs boxes, scores, labels.")
    max_detections: int = Field(default=100, ge=1, le=10000, description="With postprocess: detections kept.")
    score_threshold: float = Field(default=0.0, ge=0.0, le=1.0, description="With postprocess: lower scores are "
                                   "zeroed (label -1) in the graph.")
