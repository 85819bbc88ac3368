"""Helpers that turn artifact metadata back into family objects and torch modules."""

from __future__ import annotations

from typing import Any

from vopt.models.families.base import Family, family_for, get_family
from vopt.pipeline.artifact import Artifact, Preprocess


def family_of(artifact: Artifact) -> Family:
    name = artifact.meta.get("family")
    if name and name != "generic":
        return get_family(name)
    return family_for(None, artifact.meta.get("task"))


def resolve_preprocess(recipe: Any, family: Family) -> Preprocess:
    """The family's contract, with the recipe's `preprocess:` fields on top."""
    shape = recipe.model.input.shape
    size = recipe.preprocess.size or ([shape[2], shape[3]] if len(shape) == 4 else None)
    base = family.preprocess(size)
    overrides = {k: v for k, v in recipe.preprocess.model_dump().items() if v is not None}
    if recipe.preprocess.size is None and size is not None:
        overrides["size"] = size
    return base.model_copy(update=overrides)


def load_module(artifact: Artifact) -> Any:
    """A torch-module artifact back into memory. These files are vopt's own cache entries."""
    import torch

    model = torch.load(artifact.path, map_location="cpu", weights_only=False)
    model.eval()
    return model


def save_module(model: Any, path) -> None:
    import torch

    torch.save(model, path)


class OutputWrapper:
    """Builds an nn.Module that maps pixel values to the family's output tuple, for export and reference runs."""

    @staticmethod
    def wrap(model: Any, family: Family) -> Any:
        import torch

        class _Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, pixel_values):
                if getattr(self.model, "_vopt_positional", False):
                    out = self.model(pixel_values)
                else:
                    out = self.model(pixel_values=pixel_values)
                return family.output_tensors(out)

        return _Wrapped().eval()
