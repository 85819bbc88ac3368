from __future__ import annotations

from pydantic import Field

from vopt.recipe.sections.base import Section


class FuseSection(Section):
    conv_bn: bool = Field(default=True, description="Fold BatchNorm into the preceding convolution.")
    channels_last: bool = Field(default=False, description="Convert weights to channels_last memory format.")
