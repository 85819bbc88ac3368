"""The quantize stage's resolved settings (its cache key), shared by the stage and the schemes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_serializer

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
    # A pipeline's component (a diffusion UNet): what its recorded calibration and check feeds depend on
    # (vopt.quant.feeds.feeds_from: model, pipeline settings, prompts and seeds). None for a single model, and
    # then left out of the cache key.
    calibration_from: dict[str, Any] | None = None
    # Each input's static shape where the recorded feeds fix it (set when the step runs, from the feeds).
    input_shapes: dict[str, list[int | None]] | None = None

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        for key in ("calibration_from", "input_shapes"):
            if data.get(key) is None:
                data.pop(key, None)
        calibration = data.get("calibration")
        if isinstance(calibration, dict) and calibration.get("prompts") is None:
            calibration.pop("prompts", None)  # images: the key stays what it was before prompts existed
        return data
