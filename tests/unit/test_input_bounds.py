"""Bounded input: every number has a range, and bad bytes are recipe errors (exit 2) with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vopt.errors import RecipeError
from vopt.recipe.resolve import load_recipe

BASE = """\
name: t
model:
  source: hf
  id: tiny-resnet
  family: resnet
  weights: random
  input: {shape: [1, 3, 64, 64]}
compile:
  target: cpu
"""


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the working directory


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "r.yaml"
    path.write_text(BASE)
    return path


def problems(path: Path, *sets: str) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, list(sets))
    return info.value.lines or [info.value.message]


@pytest.mark.parametrize(
    ("expr", "key"),
    [
        ("model.input.shape=[0,3,64,64]", "model.input.shape.0"),
        ("model.input.shape=[-1,3,64,64]", "model.input.shape.0"),
        ("model.input.shape=[3,64,64]", "model.input.shape"),
        ("model.input.shape=[1,3,64,64,1]", "model.input.shape"),
        ("model.input.shape=[1,3,16384,16384]", "model.input.shape"),  # 805M elements
        ("model.input.dynamic={batch:[8,4,16]}", "model.input.dynamic"),
        ("validate.samples=1000000000000", "validate.samples"),
        ("quantize.calibration.samples=1000000000000", "quantize.calibration.samples"),
        ("quantize.check.samples=100001", "quantize.check.samples"),
        ("validate.seed=-1", "validate.seed"),
        ("benchmark.seconds=-1", "benchmark.seconds"),
        ("benchmark.seconds=.nan", "benchmark.seconds"),
        ("benchmark.iterations=0", "benchmark.iterations"),
        ("benchmark.threads=[2,0]", "benchmark.threads.1"),
        ("preprocess.resize=-10", "preprocess.resize"),
        ("preprocess.std=[0,1,1]", "preprocess.std.0"),
        ("compile.threads=-2", "compile.threads"),
        ("export.opset=-1", "export.opset"),
        ("export.opset=6", "export.opset"),
        ("export.opset=24", "export.opset"),
        ("export.opset=21", "export"),  # the legacy exporter stops at 20
    ],
)
def test_out_of_range_numbers_are_recipe_errors_located_at_the_flag(recipe, expr, key):
    lines = problems(recipe, expr)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"--set {expr}: {key}: "), lines


def test_out_of_range_numbers_in_the_file_name_their_line(recipe):
    recipe.write_text(BASE + "validate:\n  samples: 1000000000000\nbenchmark:\n  seconds: -1\n")
    lines = problems(recipe)
    assert lines == [
        f"{recipe.name}:11: validate.samples: Input should be less than or equal to 100000",
        f"{recipe.name}:13: benchmark.seconds: Input should be greater than 0",
    ]


def test_opset_range_matches_the_installed_exporter():
    torch_constants = pytest.importorskip("torch.onnx._constants")
    from vopt.recipe.sections.limits import LEGACY_OPSET_MAX, OPSET_MAX, OPSET_MIN

    assert OPSET_MIN == torch_constants.ONNX_MIN_OPSET
    assert OPSET_MAX == torch_constants.ONNX_MAX_OPSET
    assert LEGACY_OPSET_MAX == torch_constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET


def test_valid_bounds_still_load(recipe):
    loaded = load_recipe(
        recipe,
        [
            "validate.samples=100000",
            "export.opset=23",
            "export.dynamo=true",
            "benchmark.threads=[1,2]",
            "model.input.dynamic={batch:[1,4,8]}",
        ],
    )
    assert loaded.recipe.validate_.samples == 100000


# -- bad bytes
# ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("content", "line", "words"),
    [
        (BASE.encode() + b"description: caf\xe9\n", 10, "not UTF-8"),
        ("name: t\n".encode("utf-16"), 1, "UTF-16"),
        ("name: t\n".encode("utf-32"), 1, "UTF-32"),
        (b"name: t\nmodel: {source: hf}\x00\n", 2, "NUL byte"),
        (b"name: t\n\x07\n", 2, "control character"),
        (BASE.encode() + b"validate:\n  samples: " + b"9" * 5000 + b"\n", 11, "5000 digits"),
    ],
)
def test_bad_bytes_are_recipe_errors_with_a_line(tmp_path, content, line, words):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.message.startswith(f"{path.name}:{line}: "), info.value.message
    assert words in info.value.message


def test_a_utf8_bom_is_fine(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + BASE.encode())
    assert load_recipe(path).recipe.name == "t"


@pytest.mark.parametrize("value", ["9" * 5000, "[" + "9" * 4400 + "]"])
def test_huge_integers_in_set_blame_the_flag(recipe, value):
    with pytest.raises(
        RecipeError, match=r"^--set validate.samples=\.\.\.: integer with \d+ digits \(at most 4300\)"
    ):
        load_recipe(recipe, [f"validate.samples={value}"])


def test_huge_integer_from_env_is_located(recipe, monkeypatch):
    monkeypatch.setenv("N", "9" * 5000)
    recipe.write_text(BASE + "validate:\n  samples: ${env:N}\n")
    with pytest.raises(RecipeError, match=rf"^{recipe.name}:11: validate.samples: integer with 5000 digits"):
        load_recipe(recipe)


def test_alias_bomb_is_refused_quickly(tmp_path):
    rows = ["a: &a [1,1,1,1,1,1,1,1,1,1]"] + [
        f"{n}: &{n} [{', '.join(['*' + p] * 10)}]" for p, n in zip("abcdefg", "bcdefgh", strict=True)
    ]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(RecipeError, match=r"bomb.yaml:1: recipe: expands to more than 100,000 YAML nodes"):
        load_recipe(path)


def test_deep_nesting_is_a_recipe_error(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 3000 + "]" * 3000 + "\n")
    with pytest.raises(RecipeError, match="nested too deeply"):
        load_recipe(path)


# -- late or vague errors in loading
# -----------------------------------------------------------------------------
def test_extends_cycle_names_the_line(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: [b.yaml]\nname: a\n")
    (tmp_path / "b.yaml").write_text("name: b\nextends:\n  - a.yaml\n")
    with pytest.raises(RecipeError, match=r"^b.yaml:3: extends: cycle: a.yaml -> b.yaml -> a.yaml"):
        load_recipe(tmp_path / "a.yaml")


def test_empty_file_problems_have_a_line(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    lines = problems(path)
    assert lines == [
        "empty.yaml:1: name: required key is missing",
        "empty.yaml:1: model: required key is missing",
    ]


def test_set_unknown_target_blames_the_flag_not_the_recipe_line(recipe):
    lines = problems(recipe, "compile.target=gpu")
    assert len(lines) == 1 and lines[0].startswith(
        "--set compile.target=gpu: compile.target: unknown target 'gpu'"
    )


def test_union_members_give_one_line(recipe):
    lines = problems(recipe, "benchmark.threads=0")
    assert lines == [
        "--set benchmark.threads=0: benchmark.threads: Input should be greater than or equal to 1; "
        "or input should be a valid list"
    ]
