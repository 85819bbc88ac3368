"""A rebuild whose artifact changed but whose original did not reads the PyTorch reference's outputs from the
cache (vopt.validate.reference_memo) and validates to the same numbers as computing them again."""

from __future__ import annotations

import json

from tests.conftest import tiny_model


def _validate(res) -> dict:
    assert res.exit_code == 0, res.output
    steps = json.loads(res.stdout)["steps"]
    return next(s for s in steps if s["stage"] == "validate")["report"]


def test_a_changed_quantize_reuses_the_reference_outputs(write_recipe, cli, tmp_path):
    def recipe(samples: int):
        return write_recipe(
            {
                "name": "memo",
                "model": tiny_model("resnet"),
                "quantize": {
                    "precision": "int8",
                    "calibration": {"samples": samples, "batch": 4},
                    "check": {"samples": 4, "benchmark": False},
                },
                "compile": {"target": "cpu"},
                "validate": {"samples": 8},
                "benchmark": None,
            },
            f"memo-{samples}.yaml",
        )

    first = _validate(cli("build", recipe(8), "--out", tmp_path / "a", "--json"))
    assert first["reference_outputs"].startswith("computed (")
    again = _validate(cli("build", recipe(6), "--out", tmp_path / "b", "--json"))
    assert again["reference_outputs"].startswith("from the cache (")
    fresh = _validate(cli("build", recipe(6), "--out", tmp_path / "c", "--json", "--no-cache"))
    assert "reference_outputs" not in fresh  # --no-cache recomputes and keeps nothing
    assert again["metrics"] == fresh["metrics"]
