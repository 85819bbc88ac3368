"""tflite target (placeholder until its issue lands: compile raises a clear error)."""

from __future__ import annotations

from typing import Literal

from vopt.errors import BuildError
from vopt.targets.base import CompileBase, Target


class TfliteConfig(CompileBase):
    target: Literal["tflite"] = "tflite"


class TfliteTarget(Target):
    name = "tflite"
    Config = TfliteConfig
    extra = "tflite"

    def compile(self, artifact, cfg, ctx):
        raise BuildError("the tflite target is not implemented yet", stage="compile")
