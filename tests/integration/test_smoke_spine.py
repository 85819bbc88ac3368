"""Quick end-to-end smoke test of the spine on a tiny ResNet (more spine tests live beside it)."""

from __future__ import annotations

import json

from tests.conftest import tiny_model


def test_tiny_resnet_cpu_build_and_cache(write_recipe, cli, tmp_path):
    recipe = write_recipe(
        {
            "name": "tiny",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "validate": {"samples": 8, "gates": {"cosine": ">=0.999"}},
        }
    )
    out = tmp_path / "out"
    first = cli("build", recipe, "--out", out, "--json")
    assert first.exit_code == 0, first.output
    manifest = json.loads(first.stdout)
    assert [s["stage"] for s in manifest["steps"]] == ["load", "export", "compile", "validate"]
    assert not any(s["cached"] for s in manifest["steps"])
    assert manifest["validation"]["metrics"]["logits"]["cosine"] > 0.9999
    second = cli("build", recipe, "--out", out, "--json")
    assert all(s["cached"] for s in json.loads(second.stdout)["steps"])
