"""benchmark stage (placeholder until its issue lands)."""

from __future__ import annotations

from typing import Any

from vopt.errors import BuildError
from vopt.stages.base import Stage


class BenchmarkStage(Stage):
    name = "benchmark"

    @classmethod
    def configure(cls, recipe: Any, target: Any):
        return recipe.benchmark

    def run(self, artifact, config, ctx):
        raise BuildError("the benchmark stage is not implemented yet", stage="benchmark")
