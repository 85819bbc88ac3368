"""openvino target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class OpenVinoConfig(CompileBase):
    target: Literal["openvino"] = "openvino"


class OpenVinoTarget(Target):
    name = "openvino"
    Config = OpenVinoConfig
    extra = "openvino"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the openvino target is not implemented yet", stage="compile")
