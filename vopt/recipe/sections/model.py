from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import MAX_INPUT_ELEMENTS, Dim, Seed

Task = Literal["image-classification", "object-detection", "semantic-segmentation", "feature-extraction"]


class InputSpec(Section):
    shape: list[Dim] = Field(
        default=[1, 3, 224, 224],
        min_length=4,
        max_length=4,
        description="Example input shape, NCHW: 4 positive ints.",
    )
    name: str = Field(default="pixel_values", description="Name of the model input.")
    dynamic: dict[Literal["batch", "height", "width"], list[Dim]] | None = Field(
        default=None,
        description="Dynamic axes with [min, opt, max], e.g. {batch: [1, 8, 32]}. Names: batch, height, "
        "width.",
    )

    @field_validator("shape")
    @classmethod
    def _bounded_shape(cls, shape: list[int]) -> list[int]:
        n = 1
        for d in shape:
            n *= d
        if n > MAX_INPUT_ELEMENTS:
            raise ValueError(f"{shape} is {n:,} elements; at most {MAX_INPUT_ELEMENTS:,} (1 GiB of float32)")
        return shape

    @field_validator("dynamic")
    @classmethod
    def _min_opt_max(cls, dynamic: dict[str, list[int]] | None) -> dict[str, list[int]] | None:
        for axis, values in (dynamic or {}).items():
            if len(values) != 3 or not values[0] <= values[1] <= values[2]:
                raise ValueError(f"{axis}: {values} must be [min, opt, max] with min <= opt <= max")
        return dynamic


class ComponentSource(Section):
    """One component of a model made of several files (source: onnx)."""

    path: str = Field(description="The component's file.")
    family: str | None = Field(
        default=None, description="Family of this component; the model's when omitted."
    )


class ModelSection(Section):
    source: str = Field(
        description="hf | torch | python | torchscript | exported | onnx | timm | torchvision"
    )
    id: str | None = Field(default=None, description="Hub id or local directory (hf, timm, torchvision).")
    path: str | None = Field(
        default=None, description="File for torch checkpoints, TorchScript, .pt2 or ONNX."
    )
    arch: str | None = Field(default=None, description="`module:factory` that builds the architecture.")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments for the factory.")
    task: Task | None = Field(default=None, description="Task; inferred from the model when omitted.")
    family: str | None = Field(
        default=None, description="Family name; inferred from the model config when omitted."
    )
    weights: str = Field(default="pretrained", description="pretrained | random | path/to/checkpoint")
    revision: str | None = None
    config: dict[str, Any] = Field(
        default_factory=dict, description="Config overrides (hf), e.g. for tiny variants."
    )
    trust: bool = Field(default=False, description="Allow unpickling full modules from checkpoints.")
    seed: Seed = Field(default=0, description="Seed for random weights.")
    labels: list[str] | None = Field(default=None, description="Class names, embedded in artifact metadata.")
    input: InputSpec = Field(default_factory=InputSpec)
    components: dict[str, ComponentSource] | None = Field(
        default=None,
        description="A model made of several files, by component name, in the order they run: each is "
        "built, cached and validated on its own, and the chain as a whole (e.g. {encoder: {path: enc.onnx}, "
        "decoder: {path: dec.onnx}}).",
    )

    @field_validator("source")
    @classmethod
    def _known_source(cls, value: str) -> str:
        from vopt.registry import SOURCES
        from vopt.suggest import did_you_mean

        if value not in SOURCES:
            msg = f"unknown source '{value}'{did_you_mean(value, SOURCES)}; known: {', '.join(SOURCES)}"
            raise PydanticCustomError("unknown_source", msg)
        return value

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from vopt.registry import FAMILIES
        from vopt.suggest import did_you_mean

        known = sorted(FAMILIES)
        if value not in known:
            msg = (
                f"unknown family '{value}'{did_you_mean(value, known)}; known: {', '.join(known)} "
                "(leave `family:` out to use the generic path by task)"
            )
            raise PydanticCustomError("unknown_family", msg)
        return value
