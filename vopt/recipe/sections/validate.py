from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.recipe.sections.base import Gates, Section


class ValidateSection(Section):
    data: str | list[str] | None = Field(default=None, description="Image folder(s); the built-in real samples when omitted.")
    samples: int = Field(default=16, ge=1)
    batch: int = Field(default=1, ge=1)
    seed: int = 0
    runtime: Literal["auto", "browser"] = "auto"
    reference: Literal["original", "exported"] = Field(
        default="original", description="Compare with the loaded model (original) or the model that was exported."
    )
    score_threshold: float = Field(default=0.5, description="Detection score threshold for box agreement.")
    gates: Gates = Field(default_factory=dict, description="Metric to condition, e.g. {cosine: '>=0.999'}")
