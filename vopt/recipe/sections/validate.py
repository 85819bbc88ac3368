from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.recipe.sections.base import Gates, Section
from vopt.recipe.sections.limits import MAX_SAMPLES, Batch, Samples, Seed


class ValidateSection(Section):
    data: str | list[str] | None = Field(default=None, description="Image folder(s); the built-in real samples when omitted.")
    samples: Samples = Field(default=16, description=f"Validation samples (at most {MAX_SAMPLES:,}).")
    batch: Batch = 1
    seed: Seed = 0
    runtime: Literal["auto", "browser"] = "auto"
    reference: Literal["original", "exported"] = Field(
        default="original", description="Compare with the loaded model (original) or the model that was exported."
    )
    score_threshold: float = Field(default=0.5, ge=0, le=1, description="Detection score threshold for box agreement.")
    gates: Gates = Field(default_factory=dict, description="Metric to condition, e.g. {cosine: '>=0.999'}")
