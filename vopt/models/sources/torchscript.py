"""`torchscript`: a TorchScript file. A fixed graph: exported as is (fuse and prune do not apply)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, RecipeError, first_line
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.plain import family_of_spec


class TorchScriptSource(Source):
    name = "torchscript"

    def load(self, spec) -> LoadedModel:
        import torch

        path = _file(spec, "TorchScript (.pt, from torch.jit.save)")
        return load_fixed_graph(
            spec,
            path,
            "TorchScript",
            "torchscript",
            lambda: torch.jit.load(str(path), map_location="cpu").eval(),
        )


def load_fixed_graph(
    spec, path: Path, what: str, module_format: str, loader: Callable[[], Any]
) -> LoadedModel:
    """Load a fixed-graph file (TorchScript, .pt2); a failure names the file and the loader's first line."""
    try:
        module = loader()
    except Exception as exc:
        raise BuildError(f"cannot load {what} {path}: {first_line(exc)}", stage="load") from None
    family = family_of_spec(spec)
    return LoadedModel(
        module,
        family,
        spec.task or family.task,
        labels=spec.labels,
        module_file=path,
        module_format=module_format,
        notes=[f"{what} {path.name}"],
    )


def _file(spec, what: str) -> Path:
    if not spec.path:
        raise RecipeError(f"model.path: the {spec.source} source needs a {what} file")
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.path: file not found: {path}")
    return path
