"""Recipe loading: extends (merge order, cycles), --set, ${env:VAR}, and error lines with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest

from vopt.errors import RecipeError
from vopt.recipe.load import deep_merge, load_raw
from vopt.recipe.resolve import load_recipe

BASE = """\
name: base
model:
  source: hf
  id: some/model
  family: resnet
  weights: random
  input: {shape: [1, 3, 64, 64]}
export: {opset: 17, simplify: true}
"""


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_deep_merge_later_wins_and_lists_replace():
    merged = deep_merge({"a": {"b": 1, "c": [1, 2]}, "d": 1}, {"a": {"c": [3]}, "e": 2})
    assert merged == {"a": {"b": 1, "c": [3]}, "d": 1, "e": 2}


def test_extends_merges_in_order_relative_to_recipe(tmp_path):
    write(tmp_path, "families/base.yaml", BASE)
    write(tmp_path, "targets/t.yaml", "export: {opset: 13}\ncompile: {target: cpu}\n")
    top = write(
        tmp_path,
        "top.yaml",
        "extends: [families/base.yaml, targets/t.yaml]\nname: top\nexport: {simplify: false}\n",
    )
    loaded = load_recipe(top)
    r = loaded.recipe
    assert r.name == "top"
    assert r.export.opset == 13  # the later extends file wins over the earlier
    assert r.export.simplify is False  # the recipe itself wins over both
    assert r.model.id == "some/model"
    assert loaded.raw.where(("export", "opset")).endswith("targets/t.yaml:1")
    assert loaded.raw.where(("export", "simplify")).endswith("top.yaml:3")
    assert loaded.raw.where(("model", "id")).endswith("families/base.yaml:4")


def test_extends_cycle_is_an_error(tmp_path):
    write(tmp_path, "a.yaml", "extends: [b.yaml]\nname: a\n")
    write(tmp_path, "b.yaml", "extends: [a.yaml]\n")
    with pytest.raises(RecipeError, match="cycle"):
        load_recipe(tmp_path / "a.yaml")


def test_extends_missing_file_names_the_line(tmp_path):
    path = write(tmp_path, "a.yaml", "name: a\nextends:\n  - nope.yaml\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert "a.yaml:3" in exc.value.message and "nope.yaml" in exc.value.message


def test_set_overrides_with_yaml_types(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    r = load_recipe(
        path, ["export.opset=13", "export.simplify=false", "model.input.shape=[2, 3, 32, 32]", "name=other"]
    ).recipe
    assert r.export.opset == 13 and r.export.simplify is False
    assert r.model.input.shape == [2, 3, 32, 32]
    assert r.name == "other"


def test_set_unknown_key_is_reported_against_the_flag(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["export.opsett=13"])
    assert exc.value.lines == ["--set export.opsett=13: export.opsett: unknown key (did you mean `opset`?)"]


@pytest.mark.parametrize("expr", ["export", "=3", "export..opset=1"])
def test_set_malformed(tmp_path, expr):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError, match="--set"):
        load_recipe(path, [expr])


def test_set_into_a_scalar_is_an_error(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError, match="`name` is a str"):
        load_recipe(path, ["name.x=1"])


def test_env_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("VOPT_TEST_ID", "org/from-env")
    monkeypatch.setenv("VOPT_TEST_OPSET", "13")
    path = write(
        tmp_path,
        "r.yaml",
        BASE.replace("some/model", "${env:VOPT_TEST_ID}").replace(
            "export: {opset: 17, simplify: true}", "export:\n  opset: ${env:VOPT_TEST_OPSET}"
        ),
    )
    r = load_recipe(path).recipe
    assert r.model.id == "org/from-env"
    assert r.export.opset == 13  # a whole-value substitution keeps YAML typing


def test_env_default_and_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("VOPT_TEST_MISSING", raising=False)
    path = write(tmp_path, "r.yaml", BASE.replace("some/model", "${env:VOPT_TEST_MISSING:-fallback/id}"))
    assert load_recipe(path).recipe.model.id == "fallback/id"
    path = write(tmp_path, "r2.yaml", BASE.replace("some/model", "${env:VOPT_TEST_MISSING}"))
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert "r2.yaml:4" in exc.value.message and "VOPT_TEST_MISSING" in exc.value.message


def test_typo_gives_file_line_and_suggestion(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "validate:\n  samples: 4\n  gatess: {cosine: '>=0.9'}\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    (line,) = exc.value.lines
    assert line.endswith("r.yaml:11: validate.gatess: unknown key (did you mean `gates`?)")


def test_every_problem_gets_its_own_line(tmp_path):
    text = BASE.replace("opset: 17", "opset: seventeen").replace(
        "family: resnet", "family: resnet\n  wieghts: x"
    )
    path = write(tmp_path, "r.yaml", text)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    lines = exc.value.lines
    assert len(lines) == 2
    assert any("model.wieghts: unknown key (did you mean `weights`?)" in s and "r.yaml:6" in s for s in lines)
    assert any("export.opset:" in s and "r.yaml:9" in s for s in lines)


def test_unknown_target_suggests(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "compile: {target: openvno}\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert "did you mean `openvino`?" in exc.value.lines[0]
    assert "r.yaml:9" in exc.value.lines[0]


def test_unknown_key_inside_target_section_suggests_that_targets_keys(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "compile:\n  target: cpu\n  optimisation: all\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert exc.value.lines[0].endswith(
        "r.yaml:11: compile.optimisation: unknown key (did you mean `optimization`?)"
    )


def test_missing_required_and_bad_yaml(tmp_path):
    path = write(tmp_path, "r.yaml", "name: x\n")
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    assert "model: required key is missing" in exc.value.lines[0]
    bad = write(tmp_path, "bad.yaml", "name: x\nmodel: [unclosed\n")
    with pytest.raises(RecipeError, match="bad.yaml:3: invalid YAML"):
        load_raw(bad)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(RecipeError, match="recipe file not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_shipped_recipes_all_validate():
    root = Path(__file__).resolve().parents[2] / "recipes"
    found = [p for p in root.rglob("*.yaml") if p.relative_to(root).parts[0] not in ("families", "targets")]
    assert found
    for path in found:
        load_recipe(path)


def test_duplicate_keys_are_errors(tmp_path):
    path = write(tmp_path, "r.yaml", BASE + "name: again\n")
    with pytest.raises(RecipeError, match=r"r.yaml:9: name: duplicate key"):
        load_recipe(path)


def test_gate_conditions_and_benchmark_sizes_are_checked_at_load(tmp_path):
    text = (
        BASE + "validate:\n  gates: {cosine: '~0.999'}\nbenchmark: {batch_sizes: [0]}\nquantize: {gates: {x: "
        "'>>1'}}\n"
    )
    path = write(tmp_path, "r.yaml", text)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path)
    lines = exc.value.lines
    assert any("r.yaml:10: validate.gates.cosine: bad condition '~0.999'" in s for s in lines)
    assert any("benchmark.batch_sizes.0" in s for s in lines)
    assert any("quantize.gates.x: bad condition" in s for s in lines)


def test_set_creating_a_section_is_located_at_the_flag(tmp_path):
    path = write(tmp_path, "r.yaml", BASE)
    with pytest.raises(RecipeError) as exc:
        load_recipe(path, ["benchmrk.warmup=1"])
    assert exc.value.lines == ["--set benchmrk.warmup=1: benchmrk: unknown key (did you mean `benchmark`?)"]
