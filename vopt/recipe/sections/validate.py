from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from vopt.recipe.sections.base import Gates, Section
from vopt.recipe.sections.limits import MAX_SAMPLES, Batch, Dim, Samples, Seed

# The schedulers a pipeline check can run (validate.pipeline.scheduler), each a diffusers class; a diffusers
# class name is taken as well. A table here (no diffusers import): an unknown name fails as the recipe loads.
SCHEDULERS: dict[str, str] = {
    "ddim": "DDIMScheduler",
    "ddpm": "DDPMScheduler",
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_a": "EulerAncestralDiscreteScheduler",
    "heun": "HeunDiscreteScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "dpm++_sde": "DPMSolverSinglestepScheduler",
    "unipc": "UniPCMultistepScheduler",
}
MAX_STEPS = 1000  # a scheduler's training timesteps: more inference steps than that mean nothing
MAX_PROMPTS = 16


class PipelineCheck(Section):
    """The whole pipeline run twice, in PyTorch and on the artifacts (a diffusion model's denoising loop), and
    the final images compared; for models made of components whose family runs them as a pipeline."""

    steps: int = Field(default=4, ge=1, le=MAX_STEPS, description="Denoising steps.")
    scheduler: str = Field(
        default="dpm++",
        description=f"Scheduler: {', '.join(SCHEDULERS)} (dpm++ is DPM-Solver++), or a diffusers class name.",
    )
    guidance_scale: float = Field(
        default=7.5, ge=0, le=100, description="Classifier-free guidance; <= 1 runs without it."
    )
    height: Dim | None = Field(
        default=None,
        description="Image height; the pipeline's own (UNet sample size x VAE scale) if omitted.",
    )
    width: Dim | None = Field(
        default=None,
        description="Image width; the pipeline's own (UNet sample size x VAE scale) if omitted.",
    )
    images: int = Field(default=1, ge=1, le=16, description="Images per prompt (num_images_per_prompt).")
    prompts: list[str] = Field(
        default_factory=lambda: ["a photograph of an astronaut riding a horse", "a red bicycle in the snow"],
        min_length=1,
        max_length=MAX_PROMPTS,
        description="Fixed prompts.",
    )
    seed: Seed = Field(default=0, description="Seed of the initial latents (and of stochastic schedulers).")
    vae_tiling: bool = Field(
        default=False,
        description="Also decode a latent twice the size in overlapping tiles (diffusers' tiled decode) with "
        "the dynamic-size decoder, against PyTorch's.",
    )

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, value: str) -> str:
        if value in SCHEDULERS or value in SCHEDULERS.values():
            return value
        from vopt.suggest import did_you_mean

        names = [*SCHEDULERS, *SCHEDULERS.values()]
        raise PydanticCustomError(
            "unknown_scheduler",
            f"unknown scheduler '{value}'{did_you_mean(value, names)}; known: {', '.join(SCHEDULERS)}",
        )


class ValidateSection(Section):
    data: str | list[str] | None = Field(
        default=None, description="Image folder(s); the built-in real samples when omitted."
    )
    samples: Samples = Field(default=16, description=f"Validation samples (at most {MAX_SAMPLES:,}).")
    batch: Batch = 1
    seed: Seed = 0
    runtime: Literal["auto", "browser"] = "auto"
    reference: Literal["original", "exported"] = Field(
        default="original",
        description="Compare with the loaded model (original) or the model that was exported.",
    )
    score_threshold: float = Field(
        default=0.5, ge=0, le=1, description="Detection score threshold for box agreement."
    )
    gates: Gates = Field(default_factory=dict, description="Metric to condition, e.g. {cosine: '>=0.999'}")
    allow_overlap: bool = Field(
        default=False,
        description="Validate on calibration images anyway (warned); otherwise "
        "an overlap by content hash is a recipe error.",
    )
    labels: str | None = Field(
        default=None,
        description="File mapping image names to class indices; found "
        "automatically (labels.csv, classes.txt, ImageFolder) when omitted; 'none' turns labels off.",
    )
    gate_mode: Literal["estimate", "lower_bound"] = Field(
        default="estimate",
        description="estimate: the measured rate decides; lower_bound: the pessimistic end of its "
        "95% interval must pass.",
    )
    default_gates: bool = Field(
        default=True, description="Add the task's default gates for metrics the recipe does not gate."
    )
    pipeline: PipelineCheck | None = Field(
        default=None,
        description="For a pipeline of components (Stable Diffusion): the denoising loop's settings for the "
        "check (steps, scheduler, guidance_scale, height, width, images, prompts, seed, vae_tiling).",
    )
