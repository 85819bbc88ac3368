"""fuse stage (placeholder until its issue lands)."""

from __future__ import annotations

from typing import Any

from vopt.errors import BuildError
from vopt.stages.base import Stage


class FuseStage(Stage):
    name = "fuse"

    @classmethod
    def configure(cls, recipe: Any, target: Any):
        return recipe.fuse

    def run(self, artifact, config, ctx):
        raise BuildError("the fuse stage is not implemented yet", stage="fuse")
