"""`qnn-context`: an EPContext ONNX model wrapping a precompiled QNN context binary (embedded, or in a .bin
beside it, both in one directory). Only a Qualcomm device (or the QNN EP on one) runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vopt.formats.base import Format
from vopt.formats.onnx import inspect_onnx, is_ep_context

NAME = "qnn-context"


class QnnContextFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "QNN context binary in an EPContext ONNX model"
    extra: ClassVar[str] = "qnn"
    detect_order: ClassVar[int] = 10

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        if path.is_dir() and any(path.glob("*_ctx.onnx")):
            return sorted(path.glob("*_ctx.onnx"))[0]
        if path.suffix.lower() == ".onnx" and path.is_file() and is_ep_context(path):
            return path
        return None

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        model = cls.detect(path) or path
        return inspect_onnx(model, cls.name, ", EPContext (precompiled context binary)")
