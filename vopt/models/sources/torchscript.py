"""`torchscript`: a TorchScript file. A fixed graph: exported as is (fuse and prune do not apply)."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import BuildError, RecipeError
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.plain import family_of_spec


class TorchScriptSource(Source):
    name = "torchscript"

    def load(self, spec) -> LoadedModel:
        import torch

        path = _file(spec, "TorchScript (.pt, from torch.jit.save)")
        try:
            model = torch.jit.load(str(path), map_location="cpu").eval()
        except Exception as exc:
            first = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            raise BuildError(f"cannot load TorchScript {path}: {first}", stage="load") from None
        family = family_of_spec(spec)
        return LoadedModel(model, family, spec.task or family.task, labels=spec.labels,
                           module_file=path, module_format="torchscript", notes=[f"TorchScript {path.name}"])


def _file(spec, what: str) -> Path:
    if not spec.path:
        raise RecipeError(f"model.path: the {spec.source} source needs a {what} file")
    path = Path(spec.path).expanduser()
    if not path.is_file():
        raise RecipeError(f"model.path: file not found: {path}")
    return path
