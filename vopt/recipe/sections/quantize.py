from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from vopt.recipe.sections.base import Section

Precision = Literal["fp32", "fp16", "bf16", "int8", "int16", "int4"]


class CalibrationSection(Section):
    data: str | list[str] | None = Field(default=None, description="Image folder(s), .npy or .npz; built-in samples when omitted.")
    samples: int = Field(default=64, ge=1)
    batch: int = Field(default=8, ge=1)
    seed: int = 0
    method: Literal["minmax", "entropy", "percentile"] = "minmax"
    synthetic: bool = Field(default=False, description="Random tensors instead of images; marked in every report.")


class ExcludeSection(Section):
    op_types: list[str] = Field(default_factory=list)
    nodes: list[str] = Field(default_factory=list, description="Node-name globs kept in float.")


class QuantizeSection(Section):
    precision: Precision = "int8"
    scheme: str | None = Field(default=None, description="Override the target's default scheme.")
    per_channel: bool | None = None
    activation_type: Literal["uint8", "int8", "uint16", "int16"] | None = None
    weight_type: Literal["uint8", "int8"] | None = None
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    exclude: ExcludeSection = Field(default_factory=ExcludeSection)
    gates: dict[str, str] = Field(default_factory=dict, description="e.g. {centered_cosine: '>=0.98'}")
    auto_fallback: bool = False
    max_float_fraction: float = Field(default=0.25, ge=0.0, le=1.0)
    require_speedup: float | None = Field(default=None, description="Fail unless quantized/float throughput >= this.")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra scheme-specific settings.")
