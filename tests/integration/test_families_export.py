"""Every registered family: a tiny random model goes load -> fuse -> export, and ONNX Runtime matches
PyTorch on real images (or, for a pipeline's components, the family's example inputs) within the family's
tolerance. Parametrized over the registry itself, so a newly registered family is tested (and fails here if
it has no tiny config). A component family (a diffusion UNet) is built as part of its pipeline, whose
build checks every component."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model
from vopt.models.families import all_families, get_family
from vopt.models.families.stable_diffusion import COMPONENT_FAMILIES

FAMILIES = sorted(set(all_families()) - set(COMPONENT_FAMILIES.values()))


def _per_component(report: dict) -> dict[str, dict]:
    """A stage's report per component; a one-model build is its own only component."""
    return report.get("components", {"": report})


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
    load = steps["load"]["report"]
    assert load["family"] == family
    families = {name: c["family"] for name, c in load["components"].items()} if "components" in load else None
    exports = _per_component(steps["export"]["report"])
    assert len(exports) == (len(families) if families else 1)
    for component, export in exports.items():
        comp_fam = get_family(families[component]) if families else fam
        parity = export["parity"]
        # A component is checked on its family's example inputs (a UNet: both guidance rows), not on images.
        assert parity["samples"] >= 1 if families else parity["samples"] == 4, component
        assert set(parity["outputs"]) == set(comp_fam.outputs), component
        for name, m in parity["outputs"].items():
            assert m["cosine"] >= 0.9999, (component, name, m)
            assert m["max_abs_diff"] <= comp_fam.atol, (component, name, m)
            # The tiny random model's outputs must really depend on its input, or the parity proves nothing
            # (None: a component checked on a batch of one, the VAE encoder's one image).
            if not (families and m["input_variation"] is None):
                assert m["input_variation"] > 0.02, (component, name, m)
                assert m["centered_cosine"] >= 0.9999, (component, name, m)
    for component, fuse in _per_component(steps["fuse"]["report"]).items():
        assert fuse["check"]["cosine"] >= 0.99999, component
