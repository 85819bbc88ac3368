"""`tensorrt-engine`: a directory with a serialized TensorRT engine and vopt's metadata beside it. Engines
need TensorRT and an NVIDIA GPU to run; nothing runs them on a machine without one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from vopt.formats.base import Format

NAME = "tensorrt-engine"


class TensorRtEngineFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "TensorRT engine"
    suffixes: ClassVar[tuple[str, ...]] = (".engine",)
    extra: ClassVar[str] = "tensorrt"

    @classmethod
    def detect(cls, path: Path) -> Path | None:
        if path.suffix == ".engine" or (path.is_dir() and any(path.glob("*.engine"))):
            return path
        return None

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        """Engines need TensorRT to deserialize; the name and the metadata file beside it tell the rest."""
        engine = path if path.suffix == ".engine" else sorted(path.glob("*.engine"))[0]
        meta_file = engine.parent / "vopt_metadata.json"
        info = super().inspect(path)
        info["detail"] = f"{engine.name} (TensorRT version and GPU arch in the name)"
        info["metadata"] = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        return info
