"""`timm` and `torchvision`. Both need torchvision, whose registry wheel is CUDA-linked on CPU-only
machines (importing it fails with "operator torchvision::nms does not exist"): then the build stops
with exit 4 and that reason."""

from __future__ import annotations

from typing import Any

from vopt.errors import BackendUnavailable, RecipeError, first_line
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.plain import finish, load_weights

CUDA_NOTE = (
    "torchvision from PyPI is CUDA-linked and fails to import on CPU-only machines; install the CPU "
    "build from the PyTorch index, or use the hf source"
)


def import_hub(name: str) -> Any:
    """The module, or BackendUnavailable saying why it does not import here."""
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        raise BackendUnavailable(
            f"the {name} source needs '{exc.name}', which is not installed ({CUDA_NOTE})"
        ) from None
    except Exception as exc:  # a broken torchvision raises RuntimeError at import
        raise BackendUnavailable(
            f"{name} does not import here ({first_line(exc, limit=200, with_type=True)}): {CUDA_NOTE}"
        ) from None


def unavailable_reason(name: str) -> str | None:
    try:
        import_hub(name)
    except BackendUnavailable as exc:
        return exc.message
    return None


class TimmSource(Source):
    name = "timm"

    def load(self, spec) -> LoadedModel:
        timm = import_hub("timm")
        if not spec.id:
            raise RecipeError("model.id: the timm source needs a model name, e.g. resnet50.a1_in1k")
        model = timm.create_model(spec.id, pretrained=spec.weights == "pretrained", **spec.kwargs)
        if spec.weights not in ("pretrained", "random"):
            load_weights(model, spec.weights)
        loaded = finish(
            model,
            spec,
            random=spec.weights == "random",
            notes=[f"timm {spec.id}"],
            build={"kind": "timm", "id": spec.id, "kwargs": spec.kwargs},
        )
        cfg = timm.data.resolve_data_config({}, model=model)
        loaded.family.mean, loaded.family.std = list(cfg["mean"]), list(cfg["std"])  # type: ignore[misc]
        return loaded


class TorchvisionSource(Source):
    name = "torchvision"

    def load(self, spec) -> LoadedModel:
        tv = import_hub("torchvision")
        if not spec.id:
            raise RecipeError("model.id: the torchvision source needs a model name, e.g. resnet50")
        weights = "DEFAULT" if spec.weights == "pretrained" else None
        model = tv.models.get_model(spec.id, weights=weights, **spec.kwargs)
        if spec.weights not in ("pretrained", "random"):
            load_weights(model, spec.weights)
        return finish(
            model,
            spec,
            random=spec.weights == "random",
            notes=[f"torchvision {spec.id}"],
            build={"kind": "torchvision", "id": spec.id, "kwargs": spec.kwargs},
        )
