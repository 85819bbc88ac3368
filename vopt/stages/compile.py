"""compile: hand the artifact to the recipe's target."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.pipeline.artifact import Artifact
from vopt.stages.base import Stage


class CompileConfig(BaseModel):
    settings: dict[str, Any]
    recipe_name: str
    # Targets read the input spec (e.g. TensorRT profiles from dynamic dims): it belongs in the cache key.
    model_input: dict[str, Any] | None = None


class CompileStage(Stage):
    name = "compile"
    tools = ("onnx",)

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> CompileConfig:
        target.check_recipe(recipe)
        return CompileConfig(settings=recipe.compile.model_dump(mode="json"), recipe_name=recipe.name,
                             model_input=recipe.model.input.model_dump(mode="json"))

    @classmethod
    def fingerprint(cls, config: CompileConfig) -> dict[str, Any]:
        """Machine facts the target says change the compiled bytes (TensorRT: the GPU's compute capability)."""
        from vopt.registry import get_target

        material = get_target(config.settings["target"]).key_material()
        return {"target": material} if material else {}

    @classmethod
    def extra_tools(cls, config: CompileConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: CompileConfig, ctx) -> Artifact:
        cfg = ctx.target.Config.model_validate(config.settings)
        from vopt.targets.metadata import effective_precision

        out = ctx.target.compile(artifact, cfg, ctx)
        # What the artifact is (quantized, or as the target built it), not just the compile setting.
        built = out.meta.get("precision") if out.meta.get("precision") != artifact.meta.get("precision") else None
        precision = effective_precision(out, ctx.target.precision(cfg), built=built)
        out.meta = {**out.meta, "target": ctx.target.name, "precision": precision}
        return out
