"""fuse: Conv+BN folding found from a real forward pass, checked against the unfolded model."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tests.conftest import tiny_model
from vopt.models.fuse import find_conv_bn_pairs, fold


class TwoHeads(nn.Module):
    """conv1 feeds bn1 only (foldable); conv2 feeds two BatchNorms (not foldable); bn3 follows a ReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2a, self.bn2b = nn.Conv2d(8, 8, 3), nn.BatchNorm2d(8), nn.BatchNorm2d(8)
        self.bn3 = nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv1(x)
        y = self.bn1(y)
        z = self.conv2(y)
        return self.bn2a(z) + self.bn2b(z) + self.bn3(torch.relu(z))


def _randomized(model):
    from vopt.models.init import sane_random_init

    return sane_random_init(model, [1, 3, 16, 16])


def test_fuse_folds_only_exclusive_conv_bn_pairs():
    model = _randomized(TwoHeads())
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        before = model(x)
        found = find_conv_bn_pairs(model, x, model)
        assert found.fused == [("conv1", "bn1")]
        assert sorted(found.unfused_bn) == ["bn2a", "bn2b", "bn3"]
        fold(model, found.fused)
        after = model(x)
    assert isinstance(model.bn1, nn.Identity) and model.conv1.bias is not None
    assert torch.allclose(before, after, atol=1e-5)


def test_fuse_efficientnet_pooler_swap_is_exact():
    from transformers import AutoModelForImageClassification, EfficientNetConfig

    from vopt.models.families import get_family

    fam = get_family("efficientnet")
    model = AutoModelForImageClassification.from_config(EfficientNetConfig(**fam.tiny_config)).eval()
    original = model.efficientnet.pooler
    features = torch.randn(2, 320, 2, 2)
    expected = original(features)
    fam.prepare(model)
    assert isinstance(model.efficientnet.pooler, nn.AdaptiveAvgPool2d)
    assert fam.applied and "AdaptiveAvgPool2d(1)" in fam.applied[0]
    assert torch.allclose(model.efficientnet.pooler(features), expected, atol=1e-6)


@pytest.mark.slow  # a full build
def test_fuse_stage_channels_last_and_no_folding(cli, write_recipe, tmp_path):
    recipe = write_recipe(
        {
            "name": "cl",
            "model": tiny_model("mobilenet"),
            "validate": None,
            "fuse": {"conv_bn": False, "channels_last": True},
            "export": {"parity_samples": 2},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    reports = {s["stage"]: s["report"] for s in json.loads(result.stdout)["steps"]}
    fuse = reports["fuse"]
    assert "conv_bn_fused" not in fuse and fuse["check"]["max_abs_diff"] == 0.0
    cl = fuse["channels_last"]
    assert cl["eager_ms_nchw"] > 0 and cl["eager_ms_channels_last"] > 0
    assert cl["applied"] == (cl["eager_ms_channels_last"] < cl["eager_ms_nchw"])
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
