"""The calibration and check data of a pipeline's components: the inputs each component really gets when the
pipeline runs in PyTorch on prompts (a UNet's latents, timesteps and text states at every denoising step),
recorded call by call. Never random tensors, and never the validation prompts: `quantize.calibration.prompts`
are held out from `validate.pipeline.prompts` as calibration images are held out from validation images (an
overlap the recipe writes is a recipe error; the default list leaves the validation prompts out), and the
quantize check measures on a held-out part of them (`quantize.check.holdout`)."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

import numpy as np

# The default calibration prompts of a text-to-image pipeline: varied subjects, styles and scenes. The last
# `quantize.check.holdout` of them (by default half) are the quantize check's; each runs with SEEDS seeds.
DEFAULT_PROMPTS = (
    "a portrait of an old fisherman, oil painting",
    "a city street at night in the rain, neon signs",
    "a bowl of fruit on a wooden table, still life",
    "a mountain lake at sunrise with pine trees",
    "a cartoon fox reading a book",
    "an astronaut floating above the earth",
    "a close-up photograph of a bee on a sunflower",
    "a medieval castle on a cliff, fantasy art",
    "a cup of coffee with latte art, top view",
    "a snowy village street with warm lights",
    "a watercolor of a sailboat on a calm sea",
    "a robot cooking pancakes in a kitchen",
    "a desert with sand dunes under a starry sky",
    "a black cat sitting on a stack of books",
    "a futuristic train crossing a bridge",
    "a field of tulips with a windmill",
)
SEEDS = 2  # runs per prompt, each from its own seed: the initial latents differ, the text states do not


def runs_as_pipeline(recipe: Any) -> bool:
    """Whether the recipe's model is a pipeline of components that its family runs as a whole (a diffusion
    pipeline): its components calibrate on feeds recorded from that run, not on images (the source says)."""
    from vopt.registry import get_source

    try:
        return bool(getattr(get_source(recipe.model.source), "runs_as_pipeline", False))
    except Exception:  # noqa: BLE001 - an unknown source is the plan's error to report
        return False


def _norm(prompt: str) -> str:
    return " ".join(prompt.lower().split())


def overlap(prompts: list[str], held_out: list[str]) -> list[str]:
    """The prompts of `prompts` that are also in `held_out` (case and spacing ignored)."""
    theirs = {_norm(p) for p in held_out}
    return [p for p in prompts if _norm(p) in theirs]


def chosen_prompts(section_prompts: list[str] | None, validation: list[str]) -> list[str]:
    """The calibration prompts: the recipe's own as written (an overlap with the validation prompts is a
    recipe error, found when the recipe loads), else the default list without the validation prompts."""
    if section_prompts:
        return list(section_prompts)
    theirs = {_norm(p) for p in validation}
    return [p for p in DEFAULT_PROMPTS if _norm(p) not in theirs]


def split(prompts: list[str], holdout: float) -> tuple[list[str], list[str]]:
    """(calibration prompts, the check's prompts): the last `holdout` of the list (at least one prompt) is the
    check's, so the check never measures on a prompt calibration saw. A single prompt serves both (warned)."""
    if len(prompts) < 2:
        return list(prompts), list(prompts)
    n_check = min(len(prompts) - 1, max(1, math.ceil(holdout * len(prompts))))
    return list(prompts[: len(prompts) - n_check]), list(prompts[len(prompts) - n_check :])


def runs(prompts: list[str], first_seed: int, seeds: int = SEEDS) -> list[tuple[str, int]]:
    """(prompt, seed) of each pipeline run, each run its own seed (its own initial latents), in rounds over
    the prompts: taking runs from the front covers the most prompts, each with all of its denoising steps
    (every timestep of a few runs beats a few timesteps of many)."""
    n = len(prompts)
    return [(p, first_seed + k * n + i) for k in range(seeds) for i, p in enumerate(prompts)]


def feeds_from(recipe: Any, calibration: Any, holdout: float) -> dict[str, Any]:
    """What a component's recorded feeds depend on, as the quantize step's config keeps it (its cache key):
    the model, the pipeline settings, the calibration and check prompts and their seeds. The seeds start past
    the validation seed, so no run starts from the validation latents."""
    from vopt.recipe.sections.validate import PipelineCheck

    check = recipe.validate_.pipeline if recipe.validate_ is not None else None
    pipeline = (check or PipelineCheck()).model_dump(mode="json")
    prompts = chosen_prompts(calibration.prompts, pipeline["prompts"])
    calib, held = split(prompts, holdout)
    first = int(pipeline["seed"]) + 1
    return {
        "model": recipe.model.model_dump(mode="json"),
        "pipeline": {k: v for k, v in pipeline.items() if k != "prompts"},
        "calibration_runs": runs(calib, first),
        "check_runs": runs(held, first + SEEDS * len(calib)),
        "validation_prompts": pipeline["prompts"],
    }


def fingerprint(data: dict[str, Any], extra: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([data, extra], sort_keys=True, default=str).encode()).hexdigest()


def describe(
    data: dict[str, Any], component: str | None, role: str, calls: int | None = None, runs: int | None = None
) -> str:
    """E.g. 'unet inputs recorded from 16 denoising runs in PyTorch (4 steps of dpm++, guidance 7.5, 8
    prompts, 2 seeds each), 64 calls': `runs` of the role's runs were used (all when None)."""
    todo = data["calibration_runs" if role == "calibration" else "check_runs"]
    todo = todo[: len(todo) if runs is None else runs]
    p = data["pipeline"]
    prompts = len({r[0] for r in todo})
    seeds = len({r[1] for r in todo})
    what = f"{component or 'component'} inputs recorded from {len(todo)} denoising runs in PyTorch"
    how = (
        f"{p['steps']} steps of {p['scheduler']}, guidance {p['guidance_scale']}, {prompts} prompts, "
        f"{seeds} seed{'s' if seeds != 1 else ''}"
    )
    return f"{what} ({how})" + (f", {calls} calls" if calls is not None else "")


# -- recording ------------------------------------------------------------------------------------------
# (load sha256, pipeline settings, prompt, seed) -> {component: [feeds of each call]}: each run once per
# process, whichever component's step asks first (the UNet's and the text encoder's share them).
_RUNS: dict[str, dict[str, list[dict[str, np.ndarray]]]] = {}
_RUN_LIMIT = 256


def recorded(ctx: Any, component: str, data: dict[str, Any], wants: dict[str, int]) -> dict[str, Any]:
    """For each role ('calibration', 'check') in `wants`, the first `wants[role]` calls of `component` over
    that role's runs, whole runs at a time (a run's every step), running the pipeline only as far as it is
    needed, and how many runs that took ({role: calls, role + '_runs': n})."""
    pipeline = dict(data["pipeline"])
    if component != "vae_decoder":  # the tiles are the decoder's inputs only: no other component needs them
        pipeline["vae_tiling"] = False
    load = ctx.artifacts.get("load")
    out: dict[str, Any] = {}
    if load is None or not load.components:
        return {**{role: [] for role in wants}, **{f"{role}_runs": 0 for role in wants}}
    base = json.dumps(pipeline, sort_keys=True) + str(load.sha256)
    with PipelineRecorder(ctx) as recorder:
        for role, samples in wants.items():
            calls: list[dict[str, np.ndarray]] = []
            used = 0
            for prompt, seed in data["calibration_runs" if role == "calibration" else "check_runs"]:
                if len(calls) >= samples:
                    break
                key = f"{base}|{seed}|{prompt}"
                if key not in _RUNS:
                    if len(_RUNS) >= _RUN_LIMIT:
                        _RUNS.clear()
                    _RUNS[key] = recorder.run({**pipeline, "prompts": [prompt], "seed": seed})
                calls.extend(_RUNS[key].get(component, []))
                used += 1
            out[role], out[f"{role}_runs"] = calls[:samples], used
    return out


class PipelineRecorder:
    """The model of components run as a whole in PyTorch (the load step's modules, through its family's
    run_components), recording every input each component gets: `run(pipeline settings)` -> {component:
    [feeds of each call]}. The modules are loaded on the first run, once."""

    def __init__(self, ctx: Any):
        import contextlib

        self.ctx, self.stack = ctx, contextlib.ExitStack()
        self.calls: dict[str, Any] | None = None
        self.now: dict[str, list[dict[str, np.ndarray]]] = {}

    def __enter__(self) -> PipelineRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _open(self) -> dict[str, Any] | None:
        from vopt.registry import get_format
        from vopt.runtimes.base import Unavailable
        from vopt.validate.components import ComponentRun

        load = self.ctx.artifacts.get("load")
        if load is None or not load.components:
            return None
        recorded_now = self.now

        class Recorder:
            def __init__(self, name: str, call: ComponentRun):
                self.name, self.call = name, call
                self.inputs, self.outputs = call.inputs, call.outputs

            def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
                recorded_now.setdefault(self.name, []).append({k: np.array(v) for k, v in feeds.items()})
                return self.call(feeds)

        calls = {}
        for name, comp in load.components.items():
            run = get_format(comp.format).open(comp, accurate=True)
            if isinstance(run, Unavailable):
                return None
            calls[name] = Recorder(name, ComponentRun(self.stack.enter_context(run), comp))
        return calls

    def run(self, pipeline: dict[str, Any] | None) -> dict[str, list[dict[str, np.ndarray]]]:
        from vopt.datasets.images import load_batch
        from vopt.models.resolve import family_of

        if self.calls is None:
            self.calls = self._open() or {}
        if not self.calls:
            return {}
        load = self.ctx.artifacts["load"]
        self.now.clear()
        images = load_batch(None, load.preprocess, 2)  # what the VAE encoder encodes in the pipeline
        model = dict(load.meta.get("pipeline") or {})
        family_of(load).run_components(self.calls, images, {"pipeline": pipeline, "model": model})
        return {k: list(v) for k, v in self.now.items()}


def static_shapes(feeds: list[dict[str, np.ndarray]]) -> dict[str, list[int | None]]:
    """Each input's shape over the recorded calls: a dim every call had the same size on, else None (a VAE
    decoder's tiles vary; they stay dynamic)."""
    shapes: dict[str, list[int | None]] = {}
    for f in feeds:
        for name, value in f.items():
            dims = list(np.shape(value))
            have = shapes.setdefault(name, list(dims))
            shapes[name] = [a if a == b else None for a, b in zip(have, dims, strict=False)]
    return shapes
