"""timm and torchvision sources. Here torchvision does not import (the registry wheel is CUDA-linked), so
the real loading tests skip with that reason, and the error path is what gets tested."""

from __future__ import annotations

import json

import pytest

from vopt.models.sources.hub import unavailable_reason


@pytest.mark.parametrize(("source", "model_id"), [("timm", "resnet18"), ("torchvision", "resnet18")])
def test_sources_hub_unavailable_is_exit_4_with_the_reason(cli, write_recipe, tmp_path, source, model_id):
    if unavailable_reason(source) is None:
        pytest.skip(f"{source} imports here; the load test below covers it")
    recipe = write_recipe(
        {
            "name": "hub",
            "validate": None,
            "model": {
                "source": source,
                "id": model_id,
                "weights": "random",
                "input": {"shape": [1, 3, 64, 64]},
            },
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 4
    assert source in result.output and "CUDA-linked" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(("source", "model_id"), [("timm", "resnet18"), ("torchvision", "resnet18")])
def test_sources_hub_random_resnet18_builds(cli, write_recipe, tmp_path, source, model_id):
    reason = unavailable_reason(source)
    if reason is not None:
        pytest.skip(reason)
    recipe = write_recipe(
        {
            "name": "hub",
            "validate": None,
            "fuse": {},
            "export": {"parity_samples": 2},
            "model": {
                "source": source,
                "id": model_id,
                "weights": "random",
                "input": {"shape": [1, 3, 64, 64]},
            },
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    reports = {s["stage"]: s["report"] for s in json.loads(result.stdout)["steps"]}
    assert reports["fuse"]["conv_bn_fused"] >= 20
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
