"""webgpu target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class WebGpuConfig(CompileBase):
    target: Literal["webgpu"] = "webgpu"


class WebGpuTarget(Target):
    name = "webgpu"
    Config = WebGpuConfig
    extra = "core"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the webgpu target is not implemented yet", stage="compile")
