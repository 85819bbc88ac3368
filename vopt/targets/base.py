"""What every compile target provides. Target modules keep heavy imports inside methods."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vopt.recipe.sections.base import Section

if TYPE_CHECKING:
    import numpy as np

    from vopt.pipeline.artifact import Artifact
    from vopt.pipeline.context import Context


class CompileBase(Section):
    """Fields every `compile:` section shares. Targets subclass it with `target: Literal[...]`."""

    target: str
    precision: Literal["fp32", "fp16", "bf16", "int8", "int16", "int4"] | None = Field(
        default=None, description="Artifact precision; the target's default when omitted."
    )


@dataclass
class Runner:
    """Runs an artifact on its real runtime: inputs by name in, outputs by name out."""

    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    runtime: str
    info: dict[str, Any] = field(default_factory=dict)
    close: Callable[[], None] | None = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(feeds)


@dataclass
class Unavailable:
    """No runtime for this artifact here, and why."""

    reason: str


class Target:
    name: ClassVar[str]
    Config: ClassVar[type[CompileBase]]
    extra: ClassVar[str] = "core"
    requires: ClassVar[tuple[str, ...]] = ()  # import names
    default_opset: ClassVar[int] = 17
    default_precision: ClassVar[str] = "fp32"
    quantize_after_compile: ClassVar[bool] = False
    # Artifact formats compile() takes (vopt.pipeline.artifact.FORMATS); the plan checks a quantize scheme's output.
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    # The quantize stage's default scheme for this target (a name in vopt.quant.schemes.SCHEMES), or None.
    quant_scheme: ClassVar[str | None] = None
    description: ClassVar[str] = ""
    # ONNX on this machine's CPU: the benchmark also times the artifact on OpenVINO and advises when faster.
    compares_cpu_runtimes: ClassVar[bool] = False

    def available(self) -> tuple[bool, str]:
        """Can this machine build artifacts for the target?"""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"missing {', '.join(missing)}: pip install 'vopt[{self.extra}]'"
        return True, "ok"

    def hardware(self) -> tuple[bool, str]:
        """Is the device the artifact is meant for present (or simulated) here?"""
        return True, "runs on this CPU"

    def tool_versions(self) -> list[str]:
        """Distributions whose versions enter the compile step's cache key."""
        return []

    def key_material(self) -> dict[str, str]:
        """Facts about this machine that change the compiled bytes (e.g. the GPU architecture): compile cache key.
        Must stay cheap and import nothing heavy: every plan computes it."""
        return {}

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time checks that need more of the recipe than the compile section (raise RecipeError)."""

    def check_format(self, artifact: Artifact) -> None:
        """A clear compile error for an input format this target cannot take."""
        if artifact.format not in self.input_formats:
            from vopt.errors import BuildError

            raise BuildError(f"the {self.name} target compiles {' or '.join(self.input_formats)}, not {artifact.format} "
                             f"({artifact.file.name})", stage="compile")

    def precision(self, cfg: CompileBase) -> str:
        return cfg.precision or self.default_precision

    def compile(self, artifact: Artifact, cfg: CompileBase, ctx: Context) -> Artifact:
        raise NotImplementedError

    def runner(self, artifact: Artifact, cfg: CompileBase) -> Runner | Unavailable:
        return Unavailable(f"no runtime for {self.name} artifacts on this machine")
