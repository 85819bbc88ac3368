"""load: build the model from its source and save it as the first artifact."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact, IOSpec, TensorSpec
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
        get_source(recipe.model.source).check_recipe(recipe)
        if recipe.model.family:  # what only the family can check of the file (a YOLO ONNX's head)
            from vopt.models.families.lookup import get_family

            get_family(recipe.model.family).check_recipe(recipe)
        return LoadConfig(
            model=recipe.model, preprocess=recipe.preprocess, dynamic_batch=recipe.export.dynamic_batch
        )

    @classmethod
    def requirements(cls, config: LoadConfig, target: Any) -> list[tuple[str, str]]:
        return list(get_source(config.model.source).requires)

    @classmethod
    def fingerprint(cls, config: LoadConfig) -> dict[str, Any]:
        return get_source(config.model.source).fingerprint(config.model)

    def run(self, artifact: Artifact | None, config: LoadConfig, ctx) -> Artifact:
        spec = config.model
        source = get_source(spec.source)
        with contextlib.redirect_stdout(
            sys.stderr
        ):  # a factory that prints must not corrupt `--json` on stdout
            loaded = source.load(spec)
        if loaded.random_weights:
            ctx.warn("weights: random - outputs are meaningless for the task; parity numbers are still real")
        if not loaded.components:
            return self._one(loaded, source, config, ctx, ctx.workdir, ctx.report)
        # A model of components: each in its own folder of this step's entry, the set described by its family.
        from vopt.formats.components import NAME as COMPONENTS

        parts: dict[str, Artifact] = {}
        reports: dict[str, dict[str, Any]] = {}
        for name, part in loaded.components.items():
            reports[name] = {}
            parts[name] = self._one(part, source, config, ctx, ctx.workdir / name, reports[name])
        whole = {**self._one_meta(loaded, spec), **loaded.meta}
        ctx.report.update(
            family=loaded.family.name,
            task=loaded.task,
            notes=loaded.notes,
            components={n: {k: v for k, v in r.items() if k != "summary"} for n, r in reports.items()},
        )
        ctx.report["summary"] = f"{len(parts)} components: " + ", ".join(
            f"{n} ({r['summary']})" for n, r in reports.items()
        )
        first = next(iter(parts.values()))
        return Artifact(
            path=str(ctx.workdir),
            format=COMPONENTS,
            io=IOSpec(inputs=first.io.inputs, outputs=list(parts.values())[-1].io.outputs),
            preprocess=first.preprocess,
            meta=whole,
            components=parts,
        )

    @staticmethod
    def _one_meta(loaded: Any, spec: Any) -> dict[str, Any]:
        return {
            "family": loaded.family.name,
            "task": loaded.task,
            "labels": loaded.labels,
            "random_weights": loaded.random_weights,
            "source": spec.source,
            "model_id": spec.id or spec.path or spec.arch,
        }

    def _one(self, loaded: Any, source: Any, config: LoadConfig, ctx, where: Path, report: dict) -> Artifact:
        """One model (or one component) as an artifact in `where`; its facts go into `report`."""
        from vopt.models.resolve import resolve_preprocess, save_module

        spec = config.model
        where.mkdir(parents=True, exist_ok=True)
        preprocess = resolve_preprocess(config.preprocess, spec.input.shape, loaded.family)
        batch: int | str = "batch" if spec.input.dynamic or config.dynamic_batch else spec.input.shape[0]
        io = IOSpec(
            inputs=[TensorSpec(name=spec.input.name, shape=[batch, *spec.input.shape[1:]])],
            outputs=[TensorSpec(name=o, shape=[]) for o in loaded.family.outputs],
        )
        examples = (
            loaded.family.example_inputs(loaded.module, spec.input.shape)
            if loaded.module is not None
            else None
        )
        if examples:  # several named inputs (a UNet's sample, timestep and text states): the family says them
            io.inputs = [
                TensorSpec(
                    name=n,
                    shape=["batch" if batch == "batch" else v.shape[0], *v.shape[1:]],
                    dtype=str(v.dtype),
                )
                for n, v in examples.items()
            ]
        meta = {**self._one_meta(loaded, spec), **loaded.meta}
        if loaded.onnx_path is not None:  # a finished graph: copied with its external data, io read back
            from vopt.registry import get_format

            fmt = get_format(source.output_format)
            path = fmt.copy(loaded.onnx_path, where, "model" + loaded.onnx_path.suffix)
            io = fmt.io(path, io)
            meta["model_id"] = str(loaded.onnx_path) if loaded.component else meta["model_id"]
            report.update(family=loaded.family.name, task=loaded.task, notes=loaded.notes)
            report["summary"] = f"{fmt.description} file {loaded.onnx_path.name}, {len(io.outputs)} outputs"
            return Artifact(path=str(path), format=fmt.name, io=io, preprocess=preprocess, meta=meta)
        if loaded.module_file is not None:  # a fixed graph (TorchScript, .pt2) is kept as given
            import shutil

            path = where / ("model.pt2" if loaded.module_format == "exported" else "model.pt")
            shutil.copy2(loaded.module_file, path)
            meta["module_format"] = loaded.module_format
        else:  # safetensors weights + the architecture reference: no pickle in the cache, reproducible bytes
            path = where / "model.safetensors"
            meta.update(save_module(loaded.module, path, loaded.reference))
        if spec.trust:  # trust is for the recipe's file (a recipe's own `arch:` never needs it)
            report["trust_granted"] = {
                "arch": spec.arch,
                "path": spec.path,
                "needed_for": source.trust_use(spec) or "nothing: trust was granted but not needed",
            }
        n_params = sum(p.numel() for p in loaded.module.parameters())
        report.update(params=n_params, family=loaded.family.name, task=loaded.task, notes=loaded.notes)
        report["summary"] = f"{loaded.family.name} {loaded.task}, {n_params / 1e6:.2f}M params" + (
            " (RANDOM weights)" if loaded.random_weights else ""
        )
        return Artifact(path=str(path), format=source.output_format, io=io, preprocess=preprocess, meta=meta)
