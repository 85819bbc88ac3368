"""validate: run the final artifact on its real runtime and compare with PyTorch on real images."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact, Preprocess
from vopt.recipe.models import CompileSection
from vopt.recipe.sections.validate import ValidateSection
from vopt.stages.base import Stage


class ValidateConfig(BaseModel):
    section: ValidateSection
    compile: CompileSection  # type: ignore[valid-type]  # the target's typed Config: its runner's settings
    heldout: dict[str, Any] | None = None  # images held out from calibration (vopt.quant.heldout)
    # Where labels are looked for when validate.data is unset: the calibration folder's labels file.
    label_data: str | list[str] | None = None


class ValidateStage(Stage):
    name = "validate"
    transforms = False
    tools = ("torch", "onnxruntime")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> ValidateConfig | None:
        if recipe.validate_ is None:
            return None
        from vopt.quant.heldout import for_validate

        q = recipe.quantize
        label_data = (
            recipe.validate_.data
            if recipe.validate_.data is not None
            else (q.calibration.data if q is not None else None)
        )
        return ValidateConfig(
            section=recipe.validate_,
            compile=recipe.compile,
            heldout=for_validate(recipe),
            label_data=label_data,
        )

    @classmethod
    def fingerprint(cls, config: ValidateConfig) -> dict[str, Any]:
        from vopt.datasets.images import fingerprint, list_images
        from vopt.datasets.labels import labels_key
        from vopt.datasets.split import paths
        from vopt.registry import get_target

        key = {
            "data": fingerprint(
                paths(config.heldout, "check") or list_images(config.section.data), Preprocess()
            ),
            # validate.labels, or the labels found beside the data (the calibration data's when validate.data
            # is unset): their content, so a rewritten labels file re-runs the check
            "labels": labels_key(config.label_data, config.section.labels),
        }
        if config.section.runtime == "browser" or get_target(config.compile.target).browser:
            key["browser"] = _browser_identity()
        return key

    @classmethod
    def extra_tools(cls, config: ValidateConfig, target: Any) -> list[str]:
        return target.tool_versions()

    def run(self, artifact: Artifact, config: ValidateConfig, ctx) -> Artifact:
        from vopt.validate.run import validate_artifact

        ctx.report.update(
            validate_artifact(
                artifact, config.section, config.compile, ctx, config.heldout, label_data=config.label_data
            )
        )
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
