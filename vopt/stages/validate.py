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
    heldout: dict[str, Any] | None = None  # images held out from calibration (vopt.quant.heldout)


class ValidateStage(Stage):
    name = "validate"
    transforms = False
    tools = ("torch", "onnxruntime")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> ValidateConfig | None:
        if recipe.validate_ is None:
            return None
        from vopt.quant.heldout import for_validate

        return ValidateConfig(section=recipe.validate_, compile=recipe.compile.model_dump(mode="json"),
                              heldout=for_validate(recipe))

    @classmethod
    def fingerprint(cls, config: ValidateConfig) -> dict[str, Any]:
        from vopt.datasets.images import fingerprint, list_images
        from vopt.quant.heldout import paths

        key = {"data": fingerprint(paths(config.heldout, "check") or list_images(config.section.data), Preprocess())}
        if config.section.runtime == "browser" or config.compile.get("target") in ("webgpu", "webnn"):
            key["browser"] = _browser_identity()
        return key

    @classmethod
    def extra_tools(cls, config: ValidateConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: ValidateConfig, ctx) -> Artifact:
        from vopt.validate.run import validate_artifact

        ctx.report.update(validate_artifact(artifact, config.section, ctx, config.heldout))
        return artifact


def _browser_identity() -> str:
    """The pinned onnxruntime-web lockfile and the Chromium binary (stat only: no browser start)."""
    import hashlib
    import os
    from pathlib import Path

    lock = Path(__file__).resolve().parent.parent / "web" / "package-lock.json"
    parts = [hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else "no-lockfile"]
    # Debian's /usr/bin/chromium is a wrapper script; the browser itself is in /usr/lib/chromium.
    for candidate in (os.environ.get("VOPT_CHROMIUM", "/usr/bin/chromium"), "/usr/lib/chromium/chromium"):
        path = Path(candidate)
        if path.exists():
            st = path.resolve().stat()
            parts.append(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}")
    return "|".join(parts)
