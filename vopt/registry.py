"""The one table of plugins. Values are 'module:attr' strings, imported only when used, so `vopt --help` never
pays for torch, openvino or coremltools.

Targets, quantization schemes, model sources, families and artifact formats are found through
`importlib.metadata` entry points (groups `vopt.targets`, `vopt.schemes`, `vopt.sources`, `vopt.families`,
`vopt.formats`). vopt registers its own in its pyproject.toml the same way, so a plugin from another package
takes the same path as a built-in one (Hatch's plugin manager works like this): install a package that
declares `[project.entry-points."vopt.targets"] my-npu = "my_pkg.target:MyNpuTarget"` and
`compile: {target: my-npu}` works, with no edit to vopt. Stages stay in this file: their order is the
plan's."""

from __future__ import annotations

import functools
import importlib
from typing import Any

# Stages, in the order a plan runs them (the compile target may move `quantize` after `compile`).
STAGES: dict[str, str] = {
    "load": "vopt.stages.load:LoadStage",
    "fuse": "vopt.stages.fuse:FuseStage",
    "prune": "vopt.stages.prune:PruneStage",
    "export": "vopt.stages.export:ExportStage",
    "quantize": "vopt.stages.quantize:QuantizeStage",
    "compile": "vopt.stages.compile:CompileStage",
    "validate": "vopt.stages.validate:ValidateStage",
    "benchmark": "vopt.stages.benchmark:BenchmarkStage",
}

# Recipe checks only a plugin can make, run when a recipe loads (file:line errors before any work).
PLUGIN_CHECKS: dict[str, str] = {
    "quantize": "vopt.quant.schemes:recipe_problems",  # quantize.options against the scheme's Options
}

# Optional backends for `vopt doctor`: import name, distribution name, pip extra, what it does.
BACKENDS: tuple[tuple[str, str, str, str], ...] = (
    ("onnxruntime", "onnxruntime", "core", "ONNX Runtime (cpu, rocm check, validation)"),
    ("openvino", "openvino", "openvino", "OpenVINO runtime and converter"),
    ("nncf", "nncf", "openvino", "NNCF quantization for OpenVINO"),
    ("onnxruntime_qnn", "onnxruntime-qnn", "qnn", "Qualcomm QNN EP with the HTP simulator"),
    ("coremltools", "coremltools", "coreml", "CoreML converter"),
    ("tensorrt", "tensorrt", "tensorrt", "TensorRT engine builder"),
    ("ai_edge_litert", "ai-edge-litert", "tflite", "LiteRT (TFLite) runtime"),
    ("torch_pruning", "torch-pruning", "prune", "structural pruning"),
    ("onnxsim", "onnxsim", "simplify", "ONNX simplifier"),
    ("onnxslim", "onnxslim", "simplify", "ONNX simplifier (fallback)"),
)


# Entry-point group of each plugin kind.
GROUPS: dict[str, str] = {
    "TARGETS": "vopt.targets",
    "SCHEMES": "vopt.schemes",
    "SOURCES": "vopt.sources",
    "FAMILIES": "vopt.families",
    "FORMATS": "vopt.formats",
}
OWN_DISTRIBUTION = "vopt"


def discover(group: str) -> dict[str, str]:
    """name -> 'module:attr' for every entry point in `group`: vopt's own first, then other packages', each by
    name. An outside plugin never replaces a built-in one of the same name."""
    own: dict[str, str] = {}
    others: dict[str, str] = {}
    for ep_group, name, value, dist in _entry_points():
        if ep_group == group:
            (own if dist == OWN_DISTRIBUTION else others).setdefault(name, value)
    if not own:
        from vopt.errors import BackendUnavailable

        raise BackendUnavailable(
            f"vopt's own plugins ({group}) are not registered: install vopt (pip install -e .) instead of "
            "running it from a source folder"
        )
    return {**dict(sorted(own.items())), **{k: v for k, v in sorted(others.items()) if k not in own}}


@functools.cache
def _entry_points() -> tuple[tuple[str, str, str, str], ...]:
    """(group, name, value, distribution) of every entry point in vopt's groups, read once per process.
    `entry_points()` reads each distribution's entry_points.txt and keeps the first of a name found twice on
    sys.path, as imports do; only a distribution with a vopt plugin has its METADATA parsed, for its name.
    Asking every distribution for its name, for every group, took 1.2 s of every vopt command (an unchanged
    rebuild was 2.1 s)."""
    from importlib.metadata import entry_points

    everything = entry_points()
    names: dict[int, str] = {}
    found = []
    for group in GROUPS.values():
        for ep in everything.select(group=group):
            if id(ep.dist) not in names:
                names[id(ep.dist)] = (ep.dist.name if ep.dist is not None else "").lower().replace("_", "-")
            found.append((group, ep.name, ep.value, names[id(ep.dist)]))
    return tuple(found)


def __getattr__(name: str) -> dict[str, str]:
    """TARGETS, SCHEMES, SOURCES, FAMILIES, FORMATS: read from the entry points on first use, then kept (one
    dict per process, so a test may add to it)."""
    if name not in GROUPS:
        raise AttributeError(f"module 'vopt.registry' has no attribute '{name}'")
    table = discover(GROUPS[name])
    globals()[name] = table
    return table


def load_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _lookup(table: dict[str, str], kind: str, name: str) -> Any:
    from vopt.errors import RecipeError
    from vopt.suggest import did_you_mean

    if name not in table:
        raise RecipeError(f"unknown {kind} '{name}'{did_you_mean(name, table)}; known: {', '.join(table)}")
    return load_object(table[name])


def get_stage(name: str) -> Any:
    return _lookup(STAGES, "stage", name)


def get_target(name: str) -> Any:
    """Returns an instance of the target plugin."""
    return _lookup(_table("TARGETS"), "target", name)()


def _table(name: str) -> dict[str, str]:
    return globals()[name] if name in globals() else __getattr__(name)


def get_scheme(name: str) -> Any:
    """Returns the scheme class (its facts are class attributes; the stage makes one per run)."""
    return _lookup(_table("SCHEMES"), "scheme", name)


def get_source(name: str) -> Any:
    return _lookup(_table("SOURCES"), "source", name)()


def get_format(name: str) -> Any:
    """Returns the format plugin class (vopt.formats.base.Format): every question about an artifact of that
    format goes to it."""
    return _lookup(_table("FORMATS"), "format", name)


def detect_format(path: Any) -> tuple[Any, Any] | None:
    """(format class, the artifact's own path) for a file or directory, the most specific format first
    (Format.detect_order: an EPContext model is ONNX too); None when no format recognises it."""
    from pathlib import Path

    for fmt in sorted((get_format(n) for n in _table("FORMATS")), key=lambda f: (f.detect_order, f.name)):
        found = fmt.detect(Path(path))
        if found is not None:
            return fmt, found
    return None
