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
