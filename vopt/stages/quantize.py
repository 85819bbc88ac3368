"""quantize stage (placeholder until its issue lands)."""

from __future__ import annotations

from typing import Any

from vopt.errors import BuildError
from vopt.stages.base import Stage


class QuantizeStage(Stage):
    name = "quantize"

    @classmethod
    def configure(cls, recipe: Any, target: Any):
        return recipe.quantize

    def run(self, artifact, config, ctx):
        raise BuildError("the quantize stage is not implemented yet", stage="quantize")
