"""compile: hand the artifact to the recipe's target."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, model_serializer

from vopt.core.artifact import Artifact
from vopt.recipe.models import CompileSection
from vopt.recipe.sections.model import InputSpec
from vopt.stages.base import Stage


class CompileConfig(BaseModel):
    settings: CompileSection  # type: ignore[valid-type]  # the target's own typed Config
    recipe_name: str  # embedded in the artifact's metadata
    # Targets read the input spec (e.g. TensorRT profiles from dynamic dims): it belongs in the cache key.
    model_input: InputSpec = Field(default_factory=InputSpec)
    # fp16 of a model of components run as a pipeline (validate.pipeline): the model and the pipeline settings
    # whose recorded value ranges decide which nodes stay fp32 (vopt.quant.overflow). None otherwise, and then
    # left out of the cache key.
    ranges_from: dict[str, Any] | None = None

    @model_serializer(mode="wrap")
    def _without_unset_ranges(self, handler: Any) -> dict[str, Any]:
        data = handler(self)
        if data.get("ranges_from") is None:
            data.pop("ranges_from", None)
        return data


class CompileStage(Stage):
    name = "compile"
    tools = ("onnx",)

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> CompileConfig:
        target.check_recipe(recipe)
        check = recipe.validate_.pipeline if recipe.validate_ is not None else None
        ranges_from = None
        if check is not None and target.precision(recipe.compile) == "fp16":
            from vopt.quant.overflow import DATA_MAX

            ranges_from = {
                "model": recipe.model.model_dump(mode="json"),
                "pipeline": check.model_dump(mode="json"),
                "data_max": DATA_MAX,
            }
        return CompileConfig(
            settings=recipe.compile,
            recipe_name=recipe.name,
            model_input=recipe.model.input,
            ranges_from=ranges_from,
        )

    @classmethod
    def fingerprint(cls, config: CompileConfig) -> dict[str, Any]:
        """Machine facts the target says change the compiled bytes (TensorRT: the GPU's compute
        capability)."""
        from vopt.registry import get_target

        material = get_target(config.settings.target).key_material()
        out: dict[str, Any] = {"target": material} if material else {}
        if config.ranges_from is not None:  # the local model files the ranges are recorded on
            from vopt.recipe.sections.model import ModelSection
            from vopt.registry import get_source

            spec = ModelSection.model_validate(config.ranges_from["model"])
            out["ranges_from"] = get_source(spec.source).fingerprint(spec)
        return out

    @classmethod
    def extra_tools(cls, config: CompileConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: CompileConfig, ctx) -> Artifact:
        ctx.build_name, ctx.model_input = config.recipe_name, config.model_input
        ctx.ranges_from = config.ranges_from  # read by fp16 conversions (vopt.quant.overflow.fp16_fallback)
        out = ctx.target.compile(artifact, config.settings, ctx)
        if "precision" not in out.meta:  # targets label what they built, once (vopt.targets.metadata)
            from vopt.targets.metadata import effective_precision

            precision = effective_precision(out, ctx.target.precision(config.settings))
            out.meta = {**out.meta, "precision": precision}
        out.meta = {**out.meta, "target": ctx.target.name}
        return out
