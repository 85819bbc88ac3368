"""coreml target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class CoreMlConfig(CompileBase):
    target: Literal["coreml"] = "coreml"


class CoreMlTarget(Target):
    name = "coreml"
    Config = CoreMlConfig
    extra = "coreml"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the coreml target is not implemented yet", stage="compile")
