"""rocm target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class RocmConfig(CompileBase):
    target: Literal["rocm"] = "rocm"


class RocmTarget(Target):
    name = "rocm"
    Config = RocmConfig
    extra = "core"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the rocm target is not implemented yet", stage="compile")
