"""The quantize stage's resolved settings (its cache key), shared by the stage and the schemes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vopt.recipe.sections.quantize import CalibrationSection, CheckSection, ExcludeSection, SearchSection


class QuantizeConfig(BaseModel):
    target: str
    scheme: str
    precision: str
    per_channel: bool
    activation_type: str | None
    weight_type: str | None
    calibration: CalibrationSection
    exclude: ExcludeSection
    gates: dict[str, str]
    auto_fallback: bool
    max_float_fraction: float
    fallback_step: int
    require_speedup: float | None
    check: CheckSection
    options: dict[str, Any]
    preprocess: dict[
        str, Any
    ]  # the artifact's preprocessing contract (family + recipe): calibration reads images through it
    input_shape: list[int]
    # The compile settings the speed check runs both models with (Target.settings_for_quantize): only the
    # fields the target's runner reads, so a compile-only change is a quantize cache hit.
    compile: dict[str, Any]
    search: SearchSection | None = None  # quantize.search: the accuracy-aware search
    score_threshold: float = 0.5  # validate.score_threshold: box agreement of detection models
    gate_mode: str = "estimate"
    default_gates: bool = True
    # The images calibration may use and the check's held-out images (vopt.quant.heldout), as paths.
    heldout: dict[str, Any] | None = None
    # Build-machine facts the scheme's defaults read (Scheme.host_facts): part of the cache key.
    host: dict[str, Any] = Field(default_factory=dict)
