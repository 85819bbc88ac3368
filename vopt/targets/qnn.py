"""qnn target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class QnnConfig(CompileBase):
    target: Literal["qnn"] = "qnn"


class QnnTarget(Target):
    name = "qnn"
    Config = QnnConfig
    extra = "qnn"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the qnn target is not implemented yet", stage="compile")
