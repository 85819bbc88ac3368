"""The quantize step's cache key holds what the quantized file depends on: a compile-only change (here
`compile.ort_format`, which only makes the compile step also write an .ort file) is a quantize cache hit, so
it never re-runs calibration; a setting the speed check's runner reads (`compile.threads`) is not."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


def _recipe(write_recipe):
    return write_recipe(
        {
            "name": "qkey",
            "model": tiny_model("resnet"),
            "quantize": {
                "precision": "int8",
                "calibration": {"samples": 8},
                "check": {"samples": 4, "benchmark": False},
            },
            "compile": {"target": "cpu"},
            "validate": None,
        }
    )


def _configs(cli, recipe, *sets: str) -> dict[str, dict]:
    """Each step's resolved config as `vopt plan` shows it: what its cache key is made of."""
    args = [a for s in sets for a in ("--set", s)]
    res = cli("plan", recipe, "--json", *args)
    assert res.exit_code == 0, res.output
    return {s["stage"]: s["config"] for s in json.loads(res.stdout)["steps"]}


def test_plan_shows_a_compile_only_change_outside_the_quantize_key(write_recipe, cli):
    from vopt.registry import get_target

    recipe = _recipe(write_recipe)
    base = _configs(cli, recipe)
    for compile_only in ("compile.ort_format=true", "compile.optimization=basic"):
        changed = _configs(cli, recipe, compile_only)
        assert changed["quantize"] == base["quantize"] and changed["compile"] != base["compile"]
    threads = _configs(cli, recipe, "compile.threads=1")  # the runner reads it: the speed check times with it
    assert threads["quantize"]["compile"] == {**base["quantize"]["compile"], "threads": 1}
    assert "ort_format" not in get_target("cpu").runner_settings


@pytest.mark.slow
def test_a_compile_only_change_rebuilds_without_calibrating_again(write_recipe, cli, tmp_path):
    recipe = _recipe(write_recipe)
    first = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert first.exit_code == 0, first.output
    again = cli("build", recipe, "--out", tmp_path / "out", "--json", "--set", "compile.ort_format=true")
    assert again.exit_code == 0, again.output
    steps = {s["stage"]: s for s in json.loads(again.stdout)["steps"]}
    assert steps["quantize"]["cached"] and not steps["compile"]["cached"]
    assert (tmp_path / "out" / "qkey" / "model.ort").is_file()
