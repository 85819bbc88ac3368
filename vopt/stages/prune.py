"""prune stage (placeholder until its issue lands)."""

from __future__ import annotations

from typing import Any

from vopt.errors import BuildError
from vopt.stages.base import Stage


class PruneStage(Stage):
    name = "prune"

    @classmethod
    def configure(cls, recipe: Any, target: Any):
        return recipe.prune

    def run(self, artifact, config, ctx):
        raise BuildError("the prune stage is not implemented yet", stage="prune")
