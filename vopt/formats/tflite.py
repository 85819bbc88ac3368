"""`tflite`: a TFLite flatbuffer, run on LiteRT (ai-edge-litert) here."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from vopt.formats.base import Format

NAME = "tflite"


class TfliteFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "TFLite"
    suffixes: ClassVar[tuple[str, ...]] = (".tflite",)
    runtime_module: ClassVar[str | None] = "vopt.runtimes.litert"
    runtime_import: ClassVar[str | None] = "ai_edge_litert"
    runtime_name: ClassVar[str | None] = "litert"
    check_label: ClassVar[str | None] = "litert"
    extra: ClassVar[str] = "tflite"

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        info = super().inspect(path)
        info["detail"] = f"{path.name} (LiteRT flatbuffer)"
        return info
