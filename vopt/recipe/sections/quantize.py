from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, WithJsonSchema

from vopt.recipe.sections.base import Gates, Section
from vopt.recipe.sections.limits import MAX_BATCH, MAX_SAMPLES, MAX_SECONDS, Seed
from vopt.registry import SCHEMES

Precision = Literal["fp32", "fp16", "bf16", "int8", "int16", "int4"]
Method = Literal["minmax", "entropy", "percentile"]  # calibration range methods
MAX_PROMPTS = 64  # calibration prompts: each is two whole denoising runs


def _registered(name: str) -> str:
    """Checked against the registry when the recipe is read: a scheme plugin needs only its registry line."""
    if name not in SCHEMES:
        from vopt.suggest import did_you_mean

        raise ValueError(f"unknown scheme '{name}'{did_you_mean(name, SCHEMES)}; known: {', '.join(SCHEMES)}")
    return name


SchemeName = Annotated[
    str, AfterValidator(_registered), WithJsonSchema({"type": "string", "enum": list(SCHEMES)})
]


class CalibrationSection(Section):
    data: str | list[str] | None = Field(
        default=None,
        description="Image folder(s), or .npy/.npz tensor files; the built-in real samples when omitted.",
    )
    samples: int = Field(
        default=64,
        ge=1,
        le=MAX_SAMPLES,
        description="Calibration samples; repeated images get seeded random crops.",
    )
    batch: int = Field(
        default=8, ge=1, le=MAX_BATCH, description="Images per calibration batch; memory is bounded by this."
    )
    seed: Seed = 0
    method: Method = "minmax"
    percentile: float = Field(default=99.999, gt=0, le=100, description="For method: percentile.")
    synthetic: bool = Field(
        default=False, description="Random tensors instead of images; marked in every report."
    )
    prompts: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_PROMPTS,
        description="A text-to-image pipeline's components calibrate on the inputs they get while the "
        "pipeline runs on these prompts (2 seeds each); the last check.holdout of them are the quantize "
        "check's. Never validate.pipeline.prompts (an overlap is a recipe error); a default list of 16 "
        "without them when omitted.",
    )


class ExcludeSection(Section):
    op_types: list[str] = Field(default_factory=list, description="Op types kept in float.")
    nodes: list[str] = Field(default_factory=list, description="Node names or globs kept in float.")


class CheckSection(Section):
    """How the quantized model is compared with the float one (gates, sensitivity, speed)."""

    data: str | list[str] | None = Field(
        default=None, description="Validation images; the built-in samples when omitted."
    )
    samples: int = Field(
        default=16,
        ge=2,
        le=MAX_SAMPLES,
        description="Validation images for the gates (2+ for centered cosine).",
    )
    seed: Seed = Field(default=1, description="Differs from calibration's seed, so gates see other crops.")
    sensitivity_samples: int = Field(
        default=8, ge=1, le=MAX_SAMPLES, description="Calibration images used to rank layer sensitivity."
    )
    benchmark: bool = Field(
        default=True, description="Time quantized vs float on the target's runtime ('did INT8 pay')."
    )
    rounds: int = Field(default=5, ge=1, le=1000, description="Interleaved benchmark rounds.")
    holdout: float = Field(
        default=0.5,
        gt=0.0,
        lt=1.0,
        description="When the check reads the calibration folder (or has no data "
        "of its own): the fraction of it held out for the check, split by content hash.",
    )
    allow_overlap: bool = Field(
        default=False,
        description="Measure on calibration images anyway (warned); "
        "otherwise an overlap by content hash is a recipe error.",
    )
    labels: str | None = Field(
        default=None,
        description="File mapping image names to class indices; found "
        "automatically (labels.csv, classes.txt, ImageFolder) when omitted; 'none' turns "
        "labels off.",
    )


class SearchSection(Section):
    """The accuracy-aware search (vopt/quant/search.py): on a gate miss, try other calibration settings, rank
    layers by what changing each alone does to the output on the check's held-out images, and keep the fewest
    changes that hold the gate."""

    budget_s: float = Field(
        default=600.0,
        gt=0,
        le=MAX_SECONDS,
        description="Wall-time budget; the best plan so far is kept when it runs out.",
    )
    methods: list[Method] = Field(
        default_factory=lambda: ["minmax", "percentile", "entropy"],
        description="Calibration range methods to try (the recipe's own first).",
    )
    scheme_settings: bool = Field(
        default=True,
        description="Also try the scheme's own alternative settings (its `search_settings`; "
        "nncf: full bias correction).",
    )
    to: list[Literal["float", "int16"]] = Field(
        default_factory=lambda: ["float"],
        min_length=1,
        description="What a sensitive layer may become: float, or int16 activations (schemes "
        "that fall back to int16: ort-qdq, trt-qdq, qnn-qdq).",
    )
    focus_images: int = Field(
        default=24,
        ge=0,
        le=MAX_SAMPLES,
        description="Closest-call check images ranked besides those that flip.",
    )
    bridge: int = Field(
        default=0,
        ge=0,
        le=MAX_SAMPLES,
        description="After the fewest changes are found, also change the layers in gaps of at most this "
        "many between two changed ones (graph order; shortest gaps first, within max_float_fraction), and "
        "keep that plan if it holds the gate and runs at least 0.97x as fast, timed on the target's "
        "runtime. 0: off.",
    )


class QuantizeSection(Section):
    precision: Precision | None = Field(
        default=None, description="The scheme's precision when omitted (int8 for most)."
    )
    scheme: SchemeName | None = Field(
        default=None,
        description=f"Override the target's default scheme: {', '.join(SCHEMES)} (vopt.registry).",
    )
    per_channel: bool | None = Field(
        default=None, description="Per-channel weights; the scheme's default when omitted."
    )
    activation_type: Literal["uint8", "int8", "uint16", "int16"] | None = None
    weight_type: Literal["uint8", "int8"] | None = None
    calibration: CalibrationSection = Field(default_factory=CalibrationSection)
    exclude: ExcludeSection = Field(default_factory=ExcludeSection)
    gates: Gates = Field(
        default_factory=dict,
        description="Quantized vs float on real images, "
        "e.g. {centered_cosine: '>=0.98', top1_agreement: '>=0.9'}",
    )
    auto_fallback: bool = Field(
        default=False, description="On a gate miss, move the most sensitive layers back to float."
    )
    max_float_fraction: float = Field(
        default=0.25, ge=0.0, le=1.0, description="Most quantizable layers the fallback may keep in float."
    )
    fallback_step: int = Field(
        default=1, ge=1, le=MAX_SAMPLES, description="Layers moved back to float per fallback round."
    )
    require_speedup: float | None = Field(
        default=None, gt=0, le=1000, description="Fail unless quantized/float throughput >= this."
    )
    check: CheckSection = Field(default_factory=CheckSection)
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The scheme's own settings, checked against its Options (see below).",
    )
    gate_mode: Literal["estimate", "lower_bound"] = Field(
        default="estimate",
        description="estimate: the measured rate decides and a 95% interval straddling the "
        "threshold is warned; lower_bound: the pessimistic end of the interval must pass.",
    )
    default_gates: bool = Field(
        default=True,
        description="Add the task's default gates (e.g. centered_cosine "
        ">= 0.9, top1_agreement >= 0.95) for metrics the recipe does not gate.",
    )
    search: SearchSection | None = Field(
        default=None, description="Accuracy-aware search on a gate miss (instead of auto_fallback)."
    )
