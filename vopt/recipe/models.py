"""The Recipe model: one section per stage, `compile:` a union keyed by `target`."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

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
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$", description="Build name; output goes to build/<name>/.")
    description: str | None = None
    model: ModelSection
    preprocess: PreprocessSection = Field(default_factory=PreprocessSection)
    fuse: FuseSection | None = None
    prune: PruneSection | None = None
    export: ExportSection = Field(default_factory=ExportSection)
    quantize: QuantizeSection | None = None
    compile: CompileSection = Field(default_factory=lambda: load_object(TARGETS["cpu"]).Config(target="cpu"))  # type: ignore[valid-type]
    validate_: ValidateSection | None = Field(default_factory=ValidateSection, alias="validate")
    benchmark: BenchmarkSection | None = None

    model_config = {**Section.model_config, "populate_by_name": True}
