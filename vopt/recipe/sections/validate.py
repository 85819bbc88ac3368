from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.recipe.sections.base import Gates, Section
from vopt.recipe.sections.limits import MAX_SAMPLES, Batch, Samples, Seed


class ValidateSection(Section):
    data: str | list[str] | None = Field(
        default=None, description="Image folder(s); the built-in real samples when omitted."
    )
    samples: Samples = Field(default=16, description=f"Validation samples (at most {MAX_SAMPLES:,}).")
    batch: Batch = 1
    seed: Seed = 0
    runtime: Literal["auto", "browser"] = "auto"
    reference: Literal["original", "exported"] = Field(
        default="original",
        description="Compare with the loaded model (original) or the model that was exported.",
    )
    score_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Detection score threshold for box agreement."
    )
    gates: Gates = Field(default_factory=dict, description="Metric to condition, e.g. {cosine: '>=0.999'}")
    allow_overlap: bool = Field(
        default=False,
        description="Validate on calibration images anyway (warned); otherwise "
        "an overlap by content hash is a recipe error.",
    )
    labels: str | None = Field(
        default=None,
        description="File mapping image names to class indices; found "
        "automatically (labels.csv, classes.txt, ImageFolder) when omitted; 'none' turns labels off.",
    )
    gate_mode: Literal["estimate", "lower_bound"] = Field(
        default="estimate",
        description="estimate: the measured rate decides; lower_bound: the pessimistic end of its "
        "95% interval must pass.",
    )
    default_gates: bool = Field(
        default=True, description="Add the task's default gates for metrics the recipe does not gate."
    )
