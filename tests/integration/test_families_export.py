"""Every registered family: a tiny random model goes load -> fuse -> export, and ONNX Runtime matches
PyTorch on real images within the family's tolerance. Parametrized over the registry itself, so a newly
registered family is tested (and fails here if it has no tiny config)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model
from vopt.models.families import all_families, get_family

FAMILIES = sorted(all_families())


@pytest.mark.parametrize("family", FAMILIES)
def test_family_tiny_model_load_fuse_export_parity(family, write_recipe, cli, tmp_path):
    fam = get_family(family)
    assert fam.tiny_config, f"family '{family}' is registered without a tiny_config: it cannot be tested"
    recipe = write_recipe(
        {
            "name": f"tiny-{family}",
            "model": tiny_model(family),
            "fuse": {"conv_bn": True},
            "export": {"parity_samples": 4},
            "validate": None,
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    steps = {s["stage"]: s for s in manifest["steps"]}
    assert list(steps) == ["load", "fuse", "export", "compile"]
    assert steps["load"]["report"]["family"] == family
    parity = steps["export"]["report"]["parity"]
    assert parity["samples"] == 4
    assert set(parity["outputs"]) == set(fam.outputs)
    for name, m in parity["outputs"].items():
        assert m["cosine"] >= 0.9999, (name, m)
        assert m["max_abs_diff"] <= fam.atol, (name, m)
        # The tiny random model's outputs must really depend on the image, or the parity proves nothing.
        assert m["input_variation"] > 0.02, (name, m)
        assert m["centered_cosine"] >= 0.9999, (name, m)
    fuse = steps["fuse"]["report"]
    assert fuse["check"]["cosine"] >= 0.99999
