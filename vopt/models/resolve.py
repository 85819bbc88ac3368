"""Helpers that turn artifact metadata back into family objects and torch modules."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from vopt.core.artifact import Artifact, Preprocess
from vopt.errors import BuildError
from vopt.models import store
from vopt.models.families.base import Family
from vopt.models.families.generic import generic_family, scoring_from_config
from vopt.models.families.lookup import family_for, family_for_task, get_family


def family_of(artifact: Artifact) -> Family:
    name = artifact.meta.get("family")
    if name and name != "generic":
        return get_family(name)
    # A generic-path detector's scoring was read from its config at load (save_module): no family declares it.
    return generic_family(artifact.meta.get("task") or "image-classification", artifact.meta.get("scoring"))


def resolve_preprocess(section: Any, input_shape: list[int], family: Family) -> Preprocess:
    """The family's contract, with the recipe's `preprocess:` fields (`section`) on top."""
    shape = input_shape
    size = section.size or ([shape[2], shape[3]] if len(shape) == 4 else None)
    base = family.preprocess(size)
    overrides = {k: v for k, v in section.model_dump().items() if v is not None}
    if section.size is None and size is not None:
        overrides["size"] = size
    return base.model_copy(update=overrides)


def planned_preprocess(model: Any, preprocess: Any) -> Preprocess:
    """The preprocessing contract as far as it is known before the model is loaded (the recipe's `model:`
    and `preprocess:` sections): calibration and check data are fingerprinted with it at plan time. An hf
    model without `family:` only learns its family from the checkpoint's config at load."""
    if not model.family:
        family = family_for(None, model.task or "image-classification")
    else:
        family = get_family(model.family)
        if model.source == "hf" and model.task:
            family = family_for_task(family, model.task)  # as the hf source loads it
    return resolve_preprocess(preprocess, model.input.shape, family)


def load_module(artifact: Artifact) -> Any:
    """A torch-module artifact back into memory. Nothing here unpickles: weights are safetensors and the
    architecture is rebuilt from its reference (vopt.models.store); fixed graphs use their own loaders."""
    import torch

    kind = artifact.meta.get("module_format")
    if kind == "torchscript":
        return torch.jit.load(artifact.path, map_location="cpu").eval()
    if kind == "exported":  # the cache is data: a program that would run code loads only under the recipe's
        # trust, and only when it is byte for byte the file the recipe names (vopt.models.sources.factory)
        from vopt.models.sources.exported import Untrusted, load_program
        from vopt.models.sources.factory import granted_trust, untrusted_reason

        trust = granted_trust() and untrusted_reason(artifact) is None
        try:
            return load_program(Path(artifact.path), trust=trust)
        except Untrusted as exc:
            raise BuildError(
                f"refusing to load {Path(artifact.path).name} without `trust: true`: it {exc}", stage="load"
            ) from None
    if kind == store.FORMAT and isinstance(artifact.meta.get("module_ref"), dict):
        return store.load(artifact.path, artifact.meta["module_ref"])
    raise BuildError(
        f"refusing to load {Path(artifact.path).name}: module format '{kind}' is not one vopt "
        "stores (a pickled module is never loaded from the cache)",
        stage="load",
    )


def is_graph_only(artifact: Artifact) -> bool:
    """TorchScript and torch.export programs are fixed graphs: fuse and prune cannot edit them."""
    return artifact.meta.get("module_format") in ("torchscript", "exported")


def save_module(model: Any, path: Path | str, reference: dict[str, Any] | None) -> dict[str, Any]:
    """Write a module; returns the artifact metadata that says how to load it again, and what later steps
    must know of a generic-path model's config (a detector's scoring), which its ONNX children lose."""
    import torch

    if isinstance(model, torch.jit.ScriptModule):
        torch.jit.save(model, str(path))
        return {"module_format": "torchscript"}
    if reference is None:
        raise BuildError(
            "this model source gives no architecture reference, so its module cannot be cached "
            "without a pickle",
            stage="load",
        )
    store.save(model, path)
    meta: dict[str, Any] = {"module_format": store.FORMAT, "module_ref": reference}
    build = reference.get("build") or {}
    if build.get("family") == "generic" and build.get("task") == "object-detection":
        scoring = scoring_from_config(getattr(model, "config", None))
        if scoring:
            meta["scoring"] = scoring
    return meta


def takes_keywords(model: Any) -> bool:
    """transformers models take pixel_values=...; plain modules take the tensor positionally."""
    if getattr(model, "_vopt_positional", False):
        return False
    return hasattr(model, "config") and hasattr(model, "main_input_name")


class OutputWrapper:
    """Builds an nn.Module that maps pixel values to the family's output tuple, for export and reference
    runs."""

    @staticmethod
    def wrap(model: Any, family: Family) -> Any:
        import torch

        keywords = takes_keywords(model)

        class _Wrapped(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def train(self, mode: bool = True):
                self.training = mode
                # Modules unlifted from torch.export programs have no train().
                with contextlib.suppress(NotImplementedError):
                    self.model.train(mode)
                return self

            def forward(self, pixel_values):
                out = self.model(pixel_values=pixel_values) if keywords else self.model(pixel_values)
                return family.output_tensors(out)

        if type(family).example_inputs is Family.example_inputs:  # one image input (torch.export: one arg)
            return _Wrapped().eval()

        class _Named(_Wrapped):
            def forward(self, *inputs):  # the named inputs of the family's example_inputs, in order
                return family.output_tensors(self.model(*inputs))

        return _Named().eval()
