from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import MAX_NORM, MAX_RESIZE, MIN_STD, NORM_LENGTHS, Dim

_Std = Annotated[float, Field(ge=MIN_STD, le=MAX_NORM, allow_inf_nan=False)]
_Mean = Annotated[float, Field(ge=-MAX_NORM, le=MAX_NORM, allow_inf_nan=False)]


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
    mean: list[_Mean] | None = Field(
        default=None,
        description=f"Subtracted after scale: one value or one per RGB channel, each within "
        f"+-{MAX_NORM:,.0f}.",
    )
    std: list[_Std] | None = Field(
        default=None,
        description=f"Divided by after the mean: one value or one per RGB channel, {MIN_STD:g} to "
        f"{MAX_NORM:,.0f}.",
    )
    scale: float | None = Field(
        default=None,
        gt=0,
        le=MAX_NORM,
        allow_inf_nan=False,
        description="Pixel scale before mean/std, usually 1/255.",
    )
    channel_order: Literal["RGB", "BGR"] | None = None
    layout: Literal["NCHW", "NHWC"] | None = None

    @field_validator("mean", "std")
    @classmethod
    def _per_channel(cls, values: list[float] | None) -> list[float] | None:
        if values is not None and len(values) not in NORM_LENGTHS:
            raise ValueError(
                f"{len(values)} values; give one for all channels or 3, one per RGB channel (images are "
                "read as RGB)"
            )
        return values
