"""What `vopt bench` benchmarks: a build directory (its manifest says the target) or a bare ONNX file."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.errors import RecipeError
from vopt.pipeline.artifact import Artifact, IOSpec, Preprocess, TensorSpec


@dataclass
class BenchSource:
    artifact: Artifact
    target: Any
    compile_cfg: dict[str, Any]
    describe: str
    load_reference: Callable[[], Any] | None = None
    notes: list[str] = field(default_factory=list)
    size_bytes: int | None = None  # when the artifact is more than its path (an IR's .xml + .bin)

    def artifact_bytes(self) -> int:
        return self.size_bytes if self.size_bytes is not None else self.artifact.size_bytes()


def resolve_source(path: Path, cache_dir: Path | None = None) -> BenchSource:
    path = Path(path)
    if path.is_dir():
        return _from_build_dir(path, cache_dir)
    if path.is_file() and path.suffix.lower() == ".onnx":
        return _from_onnx(path)
    if path.is_file() and path.suffix.lower() == ".xml":
        return _from_openvino_ir(path)
    if not path.exists():
        raise RecipeError(f"{path}: no such file or directory")
    raise RecipeError(
        f"{path}: give a build directory (with manifest.json), an .onnx file or an OpenVINO .xml"
    )


def _from_build_dir(path: Path, cache_dir: Path | None) -> BenchSource:
    from vopt.pipeline.manifest import read_manifest
    from vopt.registry import get_target

    m = read_manifest(path)
    art = dict(m.get("artifact") or {})
    if not art:
        raise RecipeError(f"{path}: the build has no artifact")
    art["path"] = str(path / art.pop("file"))
    art.pop("size_bytes", None)
    artifact = Artifact.model_validate(art)
    target = get_target(m["target"])
    compile_cfg = ((m.get("recipe") or {}).get("resolved") or {}).get("compile") or {"target": m["target"]}
    src = BenchSource(artifact, target, compile_cfg, f"build {path} ({m['target']})")
    src.load_reference = _cached_reference(m, artifact, cache_dir, src.notes)
    return src


def _cached_reference(m: dict[str, Any], artifact: Artifact, cache_dir: Path | None, notes: list[str]):
    """The build's PyTorch model, if its load step is still in the cache (the build dir holds only the
    artifact)."""
    from vopt.pipeline.cache import Cache

    load = next((s for s in m.get("steps") or [] if s.get("stage") == "load"), None)
    entry = Cache(cache_dir).get(load["key"]) if load else None
    if entry is None or entry.artifact.format != "torch-module":
        notes.append(
            "no PyTorch model for this build in the cache: no speedup figure (rebuild, or pass --cache-dir)"
        )
        return None

    def load_module_() -> Any:
        from vopt.models.resolve import OutputWrapper, family_of, load_module

        return OutputWrapper.wrap(load_module(entry.artifact), family_of(artifact))

    return load_module_


def _preprocess(meta: dict[str, str], shape: list[int | str]) -> Preprocess:
    """The contract vopt embedded in the artifact, else the input's spatial size with ImageNet defaults."""
    if "vopt.preprocess" in meta:
        return Preprocess.model_validate(json.loads(meta["vopt.preprocess"]))
    hw = [d for d in shape[2:4] if isinstance(d, int)] if len(shape) == 4 else []
    return Preprocess(size=hw if len(hw) == 2 else [224, 224])


def target_for_format(fmt: str) -> Any:
    """The first registered target whose runtime runs this format here for real (not emulated): a bare file
    is benchmarked the way that target would run it."""
    from vopt.registry import TARGETS, get_target
    from vopt.runtimes.formats import runtime_name

    wanted = runtime_name(fmt)
    for name in TARGETS:
        target = get_target(name)
        if target.runtime_name == wanted and target.emulated is None:
            return target
    raise RecipeError(f"no registered target runs {fmt} artifacts")


def _from_openvino_ir(path: Path) -> BenchSource:
    from vopt.errors import missing_extra

    try:
        import openvino as ov
    except ImportError:
        raise missing_extra("openvino", "openvino") from None
    model = ov.Core().read_model(str(path))
    inp = model.inputs[0]
    shape: list[int | str] = [
        d.get_length() if d.is_static else ("batch" if i == 0 else f"d{i}")
        for i, d in enumerate(inp.get_partial_shape())
    ]
    meta = {}
    if model.has_rt_info(["vopt", "preprocess"]):
        meta["vopt.preprocess"] = model.get_rt_info(["vopt", "preprocess"]).astype(str)
    io = IOSpec(
        inputs=[TensorSpec(name=inp.get_any_name(), shape=shape)],
        outputs=[TensorSpec(name=o.get_any_name(), shape=[]) for o in model.outputs],
    )
    artifact = Artifact(path=str(path), format="openvino-ir", io=io, preprocess=_preprocess(meta, shape))
    target = target_for_format("openvino-ir")
    src = BenchSource(artifact, target, {"target": target.name}, f"{path.name} on OpenVINO CPU")
    src.notes.append("a bare OpenVINO IR has no PyTorch model: no speedup figure")
    weights = path.with_suffix(".bin")
    src.size_bytes = path.stat().st_size + (weights.stat().st_size if weights.is_file() else 0)
    return src


def _from_onnx(path: Path) -> BenchSource:
    """Read the I/O and vopt metadata from the protobuf (no weights, no session: the benchmark opens its
    own)."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    inits = {i.name for i in proto.graph.initializer}
    inp = next(i for i in proto.graph.input if i.name not in inits)
    dims = inp.type.tensor_type.shape.dim
    shape: list[int | str] = [d.dim_value if d.dim_value else (d.dim_param or "batch") for d in dims]
    preprocess = _preprocess(meta, shape)
    io = IOSpec(
        inputs=[TensorSpec(name=inp.name, shape=shape)],
        outputs=[TensorSpec(name=o.name, shape=[]) for o in proto.graph.output],
    )
    artifact = Artifact(
        path=str(path),
        format="onnx",
        io=io,
        preprocess=preprocess,
        meta={"family": meta.get("vopt.family"), "task": meta.get("vopt.task")},
    )
    target = target_for_format("onnx")
    src = BenchSource(artifact, target, {"target": target.name}, f"{path.name} on ONNX Runtime CPU")
    src.notes.append("a bare ONNX file has no PyTorch model: no speedup figure")
    return src
