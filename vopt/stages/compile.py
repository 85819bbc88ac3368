"""compile: hand the artifact to the recipe's target."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from vopt.core.artifact import Artifact
from vopt.recipe.models import CompileSection
from vopt.recipe.sections.model import InputSpec
from vopt.stages.base import Stage


class CompileConfig(BaseModel):
    settings: CompileSection  # type: ignore[valid-type]  # the target's own typed Config
    recipe_name: str  # embedded in the artifact's metadata
    # Targets read the input spec (e.g. TensorRT profiles from dynamic dims): it belongs in the cache key.
    model_input: InputSpec = Field(default_factory=InputSpec)


class CompileStage(Stage):
    name = "compile"
    tools = ("onnx",)

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> CompileConfig:
        target.check_recipe(recipe)
        return CompileConfig(settings=recipe.compile, recipe_name=recipe.name, model_input=recipe.model.input)

    @classmethod
    def fingerprint(cls, config: CompileConfig) -> dict[str, Any]:
        """Machine facts the target says change the compiled bytes (TensorRT: the GPU's compute
        capability)."""
        from vopt.registry import get_target

        material = get_target(config.settings.target).key_material()
        return {"target": material} if material else {}

    @classmethod
    def extra_tools(cls, config: CompileConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: CompileConfig, ctx) -> Artifact:
        ctx.build_name, ctx.model_input = config.recipe_name, config.model_input
        out = ctx.target.compile(artifact, config.settings, ctx)
        if "precision" not in out.meta:  # targets label what they built, once (vopt.targets.metadata)
            from vopt.targets.metadata import effective_precision

            precision = effective_precision(out, ctx.target.precision(config.settings))
            out.meta = {**out.meta, "precision": precision}
        out.meta = {**out.meta, "target": ctx.target.name}
        return out
