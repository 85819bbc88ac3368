from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.recipe.sections.base import Section


class PreprocessSection(Section):
    """The one preprocessing contract: calibration, validation and artifact metadata all use it.
    Fields left out take the family's defaults."""

    size: list[int] | None = Field(
        default=None, min_length=2, max_length=2, description="Output [height, width]; defaults to the input shape."
    )
    resize: int | None = Field(default=None, description="Resize the shorter side to this before the center crop.")
    mean: list[float] | None = None
    std: list[float] | None = None
    scale: float | None = Field(default=None, description="Pixel scale before mean/std, usually 1/255.")
    channel_order: Literal["RGB", "BGR"] | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
