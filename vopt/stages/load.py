"""load: build the model from its source and save it as the first artifact."""

from __future__ import annotations

import contextlib
import sys
from typing import Any

from pydantic import BaseModel

from vopt.pipeline.artifact import Artifact, IOSpec, TensorSpec
from vopt.recipe.sections.model import ModelSection
from vopt.recipe.sections.preprocess import PreprocessSection
from vopt.registry import get_source
from vopt.stages.base import Stage


class LoadConfig(BaseModel):
    model: ModelSection
    preprocess: PreprocessSection
    # export.dynamic_batch: the artifact's input spec names its batch dim "batch" instead of a fixed size.
    dynamic_batch: bool


class LoadStage(Stage):
    name = "load"
    tools = ("torch", "transformers")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> LoadConfig:
        return LoadConfig(
            model=recipe.model, preprocess=recipe.preprocess, dynamic_batch=recipe.export.dynamic_batch
        )

    @classmethod
    def fingerprint(cls, config: LoadConfig) -> dict[str, Any]:
        return get_source(config.model.source).fingerprint(config.model)

    def run(self, artifact: Artifact | None, config: LoadConfig, ctx) -> Artifact:
        from vopt.models.resolve import resolve_preprocess, save_module

        spec = config.model
        source = get_source(spec.source)
        with contextlib.redirect_stdout(
            sys.stderr
        ):  # a factory that prints must not corrupt `--json` on stdout
            loaded = source.load(spec)
        preprocess = resolve_preprocess(config.preprocess, spec.input.shape, loaded.family)
        batch: int | str = "batch" if spec.input.dynamic or config.dynamic_batch else spec.input.shape[0]
        io = IOSpec(
            inputs=[TensorSpec(name=spec.input.name, shape=[batch, *spec.input.shape[1:]])],
            outputs=[TensorSpec(name=o, shape=[]) for o in loaded.family.outputs],
        )
        meta = {
            "family": loaded.family.name,
            "task": loaded.task,
            "labels": loaded.labels,
            "random_weights": loaded.random_weights,
            "source": spec.source,
            "model_id": spec.id or spec.path or spec.arch,
        }
        if loaded.random_weights:
            ctx.warn("weights: random - outputs are meaningless for the task; parity numbers are still real")
        if loaded.onnx_path is not None:
            import shutil

            from vopt.models.sources.onnx import onnx_io

            path = ctx.out("model.onnx")
            shutil.copy2(loaded.onnx_path, path)
            io = onnx_io(path)
            ctx.report.update(family=loaded.family.name, task=loaded.task, notes=loaded.notes)
            ctx.report["summary"] = f"ONNX file {loaded.onnx_path.name}, {len(io.outputs)} outputs"
            return Artifact(path=str(path), format="onnx", io=io, preprocess=preprocess, meta=meta)
        if loaded.module_file is not None:  # a fixed graph (TorchScript, .pt2) is kept as given
            import shutil

            path = ctx.out("model.pt2" if loaded.module_format == "exported" else "model.pt")
            shutil.copy2(loaded.module_file, path)
            meta["module_format"] = loaded.module_format
        else:  # safetensors weights + the architecture reference: no pickle in the cache, reproducible bytes
            path = ctx.out("model.safetensors")
            meta.update(save_module(loaded.module, path, loaded.reference))
        if spec.trust:
            from vopt.models.sources.factory import trust_needed

            why = trust_needed(spec.arch.partition(":")[0]) if spec.arch else None
            ctx.report["trust_granted"] = {
                "arch": spec.arch,
                "path": spec.path,
                "needed_for": why or "nothing: trust was granted but not needed",
            }
        n_params = sum(p.numel() for p in loaded.module.parameters())
        ctx.report.update(params=n_params, family=loaded.family.name, task=loaded.task, notes=loaded.notes)
        ctx.report["summary"] = f"{loaded.family.name} {loaded.task}, {n_params / 1e6:.2f}M params" + (
            " (RANDOM weights)" if loaded.random_weights else ""
        )
        return Artifact(path=str(path), format="torch-module", io=io, preprocess=preprocess, meta=meta)
