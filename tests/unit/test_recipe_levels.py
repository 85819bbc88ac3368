"""level: O0..O3 expands into explicit keys that plan shows; the recipe's own keys win."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


def _plan(cli, write_recipe, **extra):
    recipe = {"name": "lvl", "model": tiny_model("resnet"), **extra}
    result = cli("plan", write_recipe(recipe), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    return [s["stage"] for s in data["steps"]], data["recipe"]


@pytest.mark.parametrize(
    ("level", "target", "stages", "precision"),
    [
        ("O0", "cpu", ["load", "export", "compile", "validate"], None),
        ("O1", "cpu", ["load", "fuse", "export", "compile", "validate"], None),
        ("O2", "cpu", ["load", "fuse", "export", "quantize", "compile", "validate"], "int8"),
        ("O2", "rocm", ["load", "fuse", "export", "quantize", "compile", "validate"], "fp16"),
        ("O3", "openvino", ["load", "fuse", "export", "quantize", "compile", "validate"], "int8"),
    ],
)
def test_level_expands_to_explicit_steps(cli, write_recipe, level, target, stages, precision):
    steps, resolved = _plan(cli, write_recipe, level=level, compile={"target": target})
    assert steps == stages
    assert resolved["export"]["simplify"] is (level != "O0")
    if precision:
        quantize = next(
            s
            for s in json.loads(
                cli(
                    "plan",
                    write_recipe(
                        {
                            "name": "lvl",
                            "model": tiny_model("resnet"),
                            "level": level,
                            "compile": {"target": target},
                        }
                    ),
                    "--json",
                ).stdout
            )["steps"]
            if s["stage"] == "quantize"
        )
        assert quantize["config"]["precision"] == precision
        assert resolved["quantize"]["auto_fallback"] is (level == "O3")


def test_explicit_keys_win_over_the_level(cli, write_recipe):
    steps, _ = _plan(cli, write_recipe, level="O2", quantize=None)
    assert "quantize" not in steps
    steps, resolved = _plan(cli, write_recipe, level="O0", fuse={"conv_bn": True}, export={"simplify": True})
    assert steps[:3] == ["load", "fuse", "export"] and resolved["export"]["simplify"] is True


def test_unknown_level_is_a_recipe_error_with_its_line(cli, write_recipe):
    path = write_recipe({"name": "lvl", "level": "O7", "model": tiny_model("resnet")})
    result = cli("check", path)
    assert result.exit_code == 2
    assert f"{path.name}:2: level: 'O7' is not a level" in result.output.replace("\n", " ")
