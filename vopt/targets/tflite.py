"""tflite: not built by vopt yet. LiteRT conversion needs litert-torch (about 1.2 GB with jax) or onnx2tf with
TensorFlow in its own environment; neither ships with vopt, so compile stops with the reason."""

from __future__ import annotations

import importlib.util
from typing import Literal

from vopt.errors import BackendUnavailable
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

REASON = ("the tflite target has no converter in vopt yet: it needs litert-torch (PyTorch -> LiteRT) or onnx2tf "
          "with TensorFlow, which vopt does not install")


class TfliteConfig(CompileBase):
    target: Literal["tflite"] = "tflite"


class TfliteTarget(Target):
    name = "tflite"
    runtime_name = "litert"
    Config = TfliteConfig
    extra = "tflite"
    requires = ("ai_edge_litert",)
    description = "LiteRT / TFLite (not implemented: no converter)"

    def available(self) -> tuple[bool, str]:
        return False, REASON

    def hardware(self) -> tuple[bool, str]:
        if importlib.util.find_spec("ai_edge_litert") is None:
            return False, "no LiteRT runtime (pip install 'vopt[tflite]')"
        return True, "LiteRT interpreter on this CPU"

    def compile(self, artifact, cfg, ctx):
        raise BackendUnavailable(REASON)

    def runner(self, artifact, cfg) -> Runner | Unavailable:
        return Unavailable(REASON)
