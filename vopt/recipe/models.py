"""The Recipe model: one section per stage, `compile:` a union keyed by `target`."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from vopt.recipe.components import ComponentOverrides
from vopt.recipe.sections.base import Section
from vopt.recipe.sections.benchmark import BenchmarkSection
from vopt.recipe.sections.export import ExportSection
from vopt.recipe.sections.fuse import FuseSection
from vopt.recipe.sections.model import ModelSection
from vopt.recipe.sections.preprocess import PreprocessSection
from vopt.recipe.sections.prune import PruneSection
from vopt.recipe.sections.quantize import QuantizeSection
from vopt.recipe.sections.validate import ValidateSection
from vopt.registry import TARGETS, load_object


def _compile_union() -> Any:
    configs = tuple(load_object(spec).Config for spec in TARGETS.values())
    return Annotated[Union[configs], Field(discriminator="target")]  # noqa: UP007


CompileSection = _compile_union()


class Recipe(Section):
    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Build name; output goes to build/<name>/."
    )
    description: str | None = None
    level: Literal["O0", "O1", "O2", "O3"] | None = Field(
        default=None,
        description="Optimization preset that fills unset keys: O0 export only, O1 + fusion and "
        "simplification, O2 + the target's reduced precision, O3 + accuracy-aware fallback. `vopt plan` "
        "shows them.",
    )
    model: ModelSection = Field(description="Where the model comes from and its example input.")
    preprocess: PreprocessSection = Field(
        default_factory=PreprocessSection,
        description="The preprocessing contract; the family's defaults fill the gaps.",
    )
    fuse: FuseSection | None = Field(default=None, description="Conv+BN folding; omit to skip.")
    prune: PruneSection | None = Field(default=None, description="Structural pruning; omit to skip.")
    export: ExportSection = Field(
        default_factory=ExportSection, description="ONNX export and its parity check."
    )
    quantize: QuantizeSection | None = Field(
        default=None, description="Quantization with calibration; omit for float."
    )
    compile: CompileSection = Field(  # type: ignore[valid-type]
        default_factory=lambda: load_object(TARGETS["cpu"]).Config(target="cpu"),
        description="The target and its settings (default: cpu).",
    )
    validate_: ValidateSection | None = Field(
        default_factory=ValidateSection,
        alias="validate",
        description="Parity with PyTorch on real images; null to skip.",
    )
    benchmark: BenchmarkSection | None = Field(
        default=None, description="Latency and throughput; omit to skip."
    )
    components: dict[str, ComponentOverrides] = Field(
        default_factory=dict,
        description="For a model made of components (a diffusion pipeline, several ONNX files): stage "
        "sections for one component, merged over the recipe's (e.g. {vae_decoder: {quantize: null}}).",
    )

    model_config = {**Section.model_config, "populate_by_name": True}
