"""webnn target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class WebNnConfig(CompileBase):
    target: Literal["webnn"] = "webnn"


class WebNnTarget(Target):
    name = "webnn"
    Config = WebNnConfig
    extra = "core"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the webnn target is not implemented yet", stage="compile")
