from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import MAX_RESIZE, Dim

_Std = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Mean = Annotated[float, Field(allow_inf_nan=False)]


class PreprocessSection(Section):
    """The one preprocessing contract: calibration, validation and artifact metadata all use it.
    Fields left out take the family's defaults."""

    size: list[Dim] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="Output [height, width]; defaults to the input shape.",
    )
    resize: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RESIZE,
        description="Resize the shorter side to this before the center crop.",
    )
    mean: list[_Mean] | None = Field(default=None, min_length=1, max_length=4)
    std: list[_Std] | None = Field(default=None, min_length=1, max_length=4)
    scale: float | None = Field(
        default=None, gt=0, allow_inf_nan=False, description="Pixel scale before mean/std, usually 1/255."
    )
    channel_order: Literal["RGB", "BGR"] | None = None
    layout: Literal["NCHW", "NHWC"] | None = None
