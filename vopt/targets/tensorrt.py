"""tensorrt target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class TensorRtConfig(CompileBase):
    target: Literal["tensorrt"] = "tensorrt"


class TensorRtTarget(Target):
    name = "tensorrt"
    Config = TensorRtConfig
    extra = "tensorrt"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the tensorrt target is not implemented yet", stage="compile")
