"""validate: run the final artifact on its real runtime and compare with PyTorch on real images."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.pipeline.artifact import Artifact, Preprocess
from vopt.recipe.sections.validate import ValidateSection
from vopt.stages.base import Stage


class ValidateConfig(BaseModel):
    section: ValidateSection
    compile: dict[str, Any]


class ValidateStage(Stage):
    name = "validate"
    transforms = False
    tools = ("torch", "onnxruntime")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> ValidateConfig | None:
        if recipe.validate_ is None:
            return None
        return ValidateConfig(section=recipe.validate_, compile=recipe.compile.model_dump(mode="json"))

    @classmethod
    def fingerprint(cls, config: ValidateConfig) -> dict[str, Any]:
        from vopt.datasets.images import fingerprint, list_images

        return {"data": fingerprint(list_images(config.section.data), Preprocess())}

    @classmethod
    def extra_tools(cls, config: ValidateConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: ValidateConfig, ctx) -> Artifact:
        from vopt.validate.run import validate_artifact

        ctx.report.update(validate_artifact(artifact, config.section, ctx))
        return artifact
