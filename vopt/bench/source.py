"""What `vopt bench` benchmarks: a build directory (its manifest says the target) or a bare ONNX file."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.core.artifact import Artifact
from vopt.errors import RecipeError


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
    from vopt.registry import detect_format

    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        return _from_build_dir(path, cache_dir)
    if not path.exists():
        raise RecipeError(f"{path}: no such file or directory")
    found = detect_format(path)
    if found is None:
        raise RecipeError(
            f"{path}: give a build directory (with manifest.json), or a model file vopt can run"
        )
    fmt, own = found
    artifact = fmt.bare_artifact(own)
    target = target_for_format(fmt)
    src = BenchSource(artifact, target, {"target": target.name}, f"{own.name} on {fmt.runtime_name}")
    src.notes.append(f"a bare {fmt.description} file has no PyTorch model: no speedup figure")
    src.size_bytes = fmt.size(own)
    return src


def _from_build_dir(path: Path, cache_dir: Path | None) -> BenchSource:
    from vopt.core.results import read_manifest
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
    from vopt.core.cache import Cache
    from vopt.registry import get_format

    load = next((s for s in m.get("steps") or [] if s.get("stage") == "load"), None)
    entry = Cache(cache_dir).get(load["key"]) if load else None
    if entry is None or not get_format(entry.artifact.format).torch_module:
        notes.append(
            "no PyTorch model for this build in the cache: no speedup figure (rebuild, or pass --cache-dir)"
        )
        return None

    recipe = m.get("recipe") or {}

    def load_module_() -> Any:
        from vopt.models.resolve import OutputWrapper, family_of, load_module
        from vopt.models.sources.factory import build_policy
        from vopt.recipe.sections.model import ModelSection

        # The cache entry is data: its reference is rebuilt only if the recipe the build recorded names it.
        section = (recipe.get("resolved") or {}).get("model")
        try:
            model = ModelSection.model_validate(section) if section else None
        except ValueError:
            model = None
        where = Path(recipe["file"]).parent if recipe.get("file") else None
        with build_policy(where, bool(model and model.trust), model):
            return OutputWrapper.wrap(load_module(entry.artifact), family_of(artifact))

    return load_module_


def target_for_format(fmt: Any) -> Any:
    """The first registered target whose runtime runs this format here for real (not emulated): a bare file
    is benchmarked the way that target would run it."""
    from vopt.registry import TARGETS, get_target

    for name in TARGETS:
        target = get_target(name)
        if (
            fmt.runtime_name is not None
            and target.runtime_name == fmt.runtime_name
            and target.emulated is None
        ):
            return target
    raise RecipeError(f"no registered target runs {fmt.name} artifacts here")
