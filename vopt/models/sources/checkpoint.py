"""`torch`: a checkpoint file. A state_dict plus `arch: module:factory` by default (torch.load with
weights_only=True); a full pickled module only with `trust: true`, because unpickling runs code."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import BuildError, RecipeError
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.factory import arch_fingerprint, build_module
from vopt.models.sources.plain import finish, load_weights


class CheckpointSource(Source):
    name = "torch"

    def fingerprint(self, spec) -> dict:
        return {**super().fingerprint(spec), **arch_fingerprint(spec.arch)}

    def trust_use(self, spec) -> str | None:
        return (
            None if spec.arch else f"unpickling the full module in {spec.path} (it runs code from the file)"
        )

    def load(self, spec) -> LoadedModel:
        import torch

        if not spec.path:
            raise RecipeError(
                "model.path: the torch source needs a checkpoint file (.pt, .pth, .bin, .safetensors)"
            )
        path = Path(spec.path).expanduser()
        if not path.is_file():
            raise RecipeError(f"model.path: checkpoint not found: {path}")
        if spec.arch:
            model = build_module(spec.arch, spec.kwargs)
            load_weights(model, path, what="model.path")
            return finish(
                model,
                spec,
                random=False,
                notes=[f"{spec.arch} + state_dict {path.name}"],
                build={"kind": "factory", "arch": spec.arch, "kwargs": spec.kwargs},
            )
        if not spec.trust:
            raise RecipeError(
                "model.arch: a state_dict checkpoint needs `arch: module:factory`; a checkpoint holding a "
                "full "
                "pickled module loads only with `trust: true` (unpickling runs code from the file)"
            )
        try:
            model = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise BuildError(
                f"cannot unpickle {path}: {type(exc).__name__}: {str(exc)[:300]}", stage="load"
            ) from None
        if not isinstance(model, torch.nn.Module):
            raise BuildError(
                f"{path} holds a {type(model).__name__}, not a module: give `arch: module:factory` "
                "to load it as a state_dict",
                stage="load",
            )
        return finish(
            model,
            spec,
            random=False,
            notes=[f"full module from {path.name} (trust: true)"],
            build={"kind": "trusted-file", "path": str(path.resolve())},
        )
