"""`python`: a `module:factory` that builds the model, with `kwargs`; weights from the factory, random,
or a state_dict path."""

from __future__ import annotations

from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.factory import arch_fingerprint, build_module
from vopt.models.sources.plain import finish, load_weights


class PythonSource(Source):
    name = "python"

    def fingerprint(self, spec) -> dict:
        return {**super().fingerprint(spec), **arch_fingerprint(spec.arch)}

    def load(self, spec) -> LoadedModel:
        import torch

        torch.manual_seed(spec.seed)
        model = build_module(spec.arch, spec.kwargs)
        notes = [f"{spec.arch}(**{spec.kwargs})"]
        if spec.weights not in ("pretrained", "random"):
            load_weights(model, spec.weights)
            notes.append(f"weights from {spec.weights}")
        return finish(
            model,
            spec,
            random=spec.weights == "random",
            notes=notes,
            build={"kind": "factory", "arch": spec.arch, "kwargs": spec.kwargs},
        )
