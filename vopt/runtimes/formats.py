"""The one table from artifact format to the runtime that runs it here, for code that holds an artifact but no
target (the quantize step's checks, `vopt bench` on a bare file). Modules are imported only when used."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

from vopt.runtimes.base import Runner, Unavailable

# format -> (runtime module, the import it needs). Each module has RUNTIME_NAME and
# open_artifact(path, *, settings, threads, accurate) -> Runner.
RUNTIMES: dict[str, tuple[str, str]] = {
    "onnx": ("vopt.runtimes.ort", "onnxruntime"),
    "openvino-ir": ("vopt.runtimes.openvino", "openvino"),
    "tflite": ("vopt.runtimes.litert", "ai_edge_litert"),
}
# The runtime name each module declares (kept here so looking one up imports nothing heavy).
RUNTIME_NAMES: dict[str, str] = {"onnx": "onnxruntime", "openvino-ir": "openvino", "tflite": "litert"}


def runtime_name(fmt: str) -> str | None:
    """Which runtime runs this format here (compare with Target.runtime_name), or None."""
    return RUNTIME_NAMES.get(fmt)


def runtime_module(fmt: str) -> ModuleType | None:
    entry = RUNTIMES.get(fmt)
    if entry is None or importlib.util.find_spec(entry[1]) is None:
        return None
    return importlib.import_module(entry[0])


def open_artifact(
    path: str | Path,
    fmt: str,
    *,
    settings: dict[str, Any] | None = None,
    threads: int | None = None,
    accurate: bool = False,
) -> Runner | Unavailable:
    """A runner for the artifact on its format's runtime. `accurate`: full precision for output checks;
    otherwise as deployed (the settings the artifact records, or `settings` from a target's compile
    section)."""
    entry = RUNTIMES.get(fmt)
    if entry is None:
        return Unavailable(f"no runtime for {fmt} artifacts on this machine")
    module = runtime_module(fmt)
    if module is None:
        return Unavailable(f"{entry[1]} is not installed (it runs {fmt} artifacts)")
    return module.open_artifact(path, settings=settings, threads=threads, accurate=accurate)
