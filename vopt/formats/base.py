"""What every artifact format provides. A format plugin answers every question a stage, a check or a
command asks about an artifact of its kind (how to recognise, copy, size, run, read back and describe it), so
no module outside a format plugin compares format names (tests/contract/test_no_name_dispatch.py).

Polygraphy keeps one loader/runner pair per backend and nothing outside a backend names it; NNCF picks a
backend entity once and calls only its abstract methods. A format is looked up once, with
`vopt.registry.get_format`, and asked."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from vopt.core.artifact import IOSpec, path_size

if TYPE_CHECKING:
    from vopt.core.artifact import Artifact
    from vopt.runtimes.base import Runner, Unavailable


class Format:
    """An artifact format. Everything is a class attribute or a classmethod: formats hold no state."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    # How a file or directory of this format is recognised (vopt inspect, vopt bench on a bare file), and when
    # it is asked: lower first, so a format that is a special case of another (an EPContext model is ONNX)
    # wins.
    suffixes: ClassVar[tuple[str, ...]] = ()
    detect_order: ClassVar[int] = 50
    # The runtime that runs it here: a module with `open_artifact(path, *, settings, threads, accurate)`, and
    # the import that module needs. None: nothing runs this format on this kind of machine.
    runtime_module: ClassVar[str | None] = None
    runtime_import: ClassVar[str | None] = None
    runtime_name: ClassVar[str | None] = None  # compare with Target.runtime_name
    # How a full-precision check on this format names where it ran (the quantize check's report).
    check_label: ClassVar[str | None] = None
    # "module:function" of the profiler that reads this runtime's own per-op counters (vopt profile).
    profiler: ClassVar[str | None] = None
    # A PyTorch module in memory: fuse, prune and export take it, and it is the eager-speed baseline.
    torch_module: ClassVar[bool] = False
    # Can stand as validation's float reference (the model as loaded: a PyTorch module or a source ONNX).
    reference: ClassVar[bool] = False
    # A standard graph that other runtimes read as is (the benchmark times it on another CPU runtime too).
    portable: ClassVar[bool] = False
    # Carries vopt's metadata (`vopt.*` keys) inside the file (set_metadata).
    writes_metadata: ClassVar[bool] = False
    # The pip extra that brings its runtime (for one-line "missing backend" errors).
    extra: ClassVar[str] = "core"

    # -- files --------------------------------------------------------------------------------------------
    @classmethod
    def detect(cls, path: Path) -> Path | None:
        """The artifact's own path when `path` (a file or a directory) holds this format, else None."""
        if path.suffix.lower() in cls.suffixes:
            return path
        return None

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        """Files beside `path` that belong to the artifact (external weights, an IR's .bin)."""
        return []

    @classmethod
    def copy(cls, path: Path, dst_dir: Path, name: str | None = None) -> Path:
        """Copy the artifact and its companions into `dst_dir` (the artifact as `name` when given; companions
        keep theirs, as the artifact refers to them by name); returns the copy's path."""
        dst_dir.mkdir(parents=True, exist_ok=True)
        dst = dst_dir / (name or path.name)
        if path.is_dir():
            shutil.copytree(path, dst)
        else:
            shutil.copy2(path, dst)
        for extra in cls.companions(path):
            shutil.copy2(extra, dst_dir / extra.name)
        return dst

    @classmethod
    def write(cls, artifact: Artifact, dst_dir: Path) -> Path:
        """The artifact as shipped in a build directory: its file(s), its companions, and the files a target
        listed beside it (`meta["companions"]`, e.g. an ORT-format model.ort)."""
        src = Path(artifact.path)
        dst = cls.copy(src, dst_dir)
        for name in artifact.meta.get("companions", []):
            shutil.copy2(src.parent / name, dst_dir / name)
        return dst

    @classmethod
    def size(cls, path: Path) -> int:
        return path_size(path) + sum(path_size(p) for p in cls.companions(path))

    # -- contents -----------------------------------------------------------------------------------------
    @classmethod
    def io(cls, path: Path, before: IOSpec) -> IOSpec:
        """The inputs and outputs as the written file has them; `before` where the file cannot be read
        here."""
        return before

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str]:
        """The metadata the file carries (vopt's `vopt.*` keys among them); {} where the format has none."""
        return dict(cls.inspect(path).get("metadata") or {})

    @classmethod
    def set_metadata(cls, path: Path, meta: dict[str, str]) -> None:
        """Write `vopt.*` metadata into the file (formats with writes_metadata)."""
        raise NotImplementedError(f"{cls.name} artifacts carry no metadata of vopt's")

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        """What `vopt inspect` shows: format, detail, inputs, outputs, op_types, precision_mix, quantization,
        metadata."""
        return {
            "format": cls.name,
            "detail": cls.description,
            "inputs": [],
            "outputs": [],
            "op_types": {},
            "precision_mix": {},
            "quantization": {},
            "metadata": {},
        }

    @classmethod
    def bare_artifact(cls, path: Path) -> Artifact:
        """An artifact for a file vopt did not build (`vopt bench`, `vopt profile`): io and metadata read from
        it."""
        from vopt.errors import RecipeError

        raise RecipeError(f"{path}: vopt cannot benchmark a bare {cls.name} file; give its build directory")

    # -- running --------------------------------------------------------------------------------------------
    @classmethod
    def runtime_missing(cls) -> str | None:
        """Why nothing runs this format here, or None."""
        import importlib.util

        if cls.runtime_module is None:
            return f"no runtime for {cls.name} artifacts on this machine"
        if cls.runtime_import and importlib.util.find_spec(cls.runtime_import) is None:
            return (
                f"{cls.runtime_import} is not installed (it runs {cls.name} artifacts): "
                f"pip install 'vopt[{cls.extra}]'"
            )
        return None

    @classmethod
    def open(
        cls,
        artifact: Artifact | Path | str,
        *,
        settings: dict[str, Any] | None = None,
        threads: int | None = None,
        accurate: bool = False,
    ) -> Runner | Unavailable:
        """A runner for the artifact on this format's runtime. `accurate`: full precision for output checks;
        otherwise as deployed (the settings the artifact records, or `settings` from a target's compile
        section)."""
        import importlib

        from vopt.runtimes.base import Unavailable

        why = cls.runtime_missing()
        if why is not None:
            return Unavailable(why)
        module = importlib.import_module(str(cls.runtime_module))
        path = getattr(artifact, "path", artifact)
        return module.open_artifact(path, settings=settings, threads=threads, accurate=accurate)
