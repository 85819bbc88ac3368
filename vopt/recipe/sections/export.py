from __future__ import annotations

from pydantic import Field, model_validator

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import LEGACY_OPSET_MAX, MAX_SAMPLES, OPSET_MAX, OPSET_MIN


class ExportSection(Section):
    opset: int | None = Field(
        default=None, ge=OPSET_MIN, le=OPSET_MAX,
        description=f"ONNX opset ({OPSET_MIN}-{LEGACY_OPSET_MAX}; up to {OPSET_MAX} with dynamo); the target's default when omitted.",
    )
    dynamo: bool = Field(default=False, description="Use the torch.export-based exporter instead of the legacy one.")
    dynamic_batch: bool = Field(default=True, description="Export with a dynamic batch axis.")
    simplify: bool = Field(default=True, description="Simplify with onnxsim, falling back to onnxslim.")
    parity: bool = Field(default=True, description="Check ONNX Runtime against PyTorch on real images.")
    parity_samples: int = Field(default=4, ge=1, le=MAX_SAMPLES)

    @model_validator(mode="after")
    def _exporter_opset(self) -> ExportSection:
        if self.opset is not None and not self.dynamo and self.opset > LEGACY_OPSET_MAX:
            raise ValueError(f"opset {self.opset}: the legacy exporter writes opsets {OPSET_MIN}-{LEGACY_OPSET_MAX}; "
                             f"set dynamo: true for up to {OPSET_MAX}")
        return self
