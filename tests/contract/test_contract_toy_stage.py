"""Adding a stage is the four edits docs/adding-a-stage.md names, and its code blocks, as they stand in the
doc, plan and build: the section and the stage become modules at the names the doc gives them, and the Recipe
field and the STAGES line are made as the doc writes them, in a child process, so vopt's source tree stays as
it is. A doc that leaves out an edit the engine needs fails here."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import yaml
from onnx import numpy_helper

from tests.conftest import REPO, tiny_model
from tests.contract.plugin_driver import vopt_with

DOC = REPO / "docs" / "adding-a-stage.md"

# Run in the child before vopt reads its registry or builds a recipe: each doc block where the doc puts it.
SETUP = '''
import importlib.util
import sys
from pathlib import Path

from vopt import registry

HERE = Path(__file__).parent
DOC_STAGES = {stages!r}


def place(name: str, file: str) -> None:
    """The doc's module, importable under the name the doc gives it."""
    spec = importlib.util.spec_from_file_location(name, HERE / file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


place("vopt.recipe.sections.sparsify", "doc_section.py")
place("vopt.stages.sparsify", "doc_stage.py")
import doc_recipe  # noqa: E402,F401  (the field on Recipe, in vopt.recipe.models)

# The STAGES lines the doc adds, each after the entry the doc lists before it.
order = list(registry.STAGES.items())
names = [n for n, _ in DOC_STAGES]
for i, (name, spec) in enumerate(DOC_STAGES):
    if name not in registry.STAGES:
        order.insert([n for n, _ in order].index(names[i - 1]) + 1, (name, spec))
registry.STAGES.clear()
registry.STAGES.update(order)
'''


def doc_blocks() -> dict[str, str]:
    """The doc's python blocks, by the path their first line names."""
    blocks = {}
    for body in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S):
        first, _, rest = body.partition("\n")
        blocks[first.removeprefix("# ").split(":")[0].strip()] = rest
    return blocks


def write_plugin(tmp_path) -> str:
    blocks = doc_blocks()
    assert {
        "vopt/recipe/sections/sparsify.py",
        "vopt/recipe/models.py",
        "vopt/registry.py",
        "vopt/stages/sparsify.py",
    } <= set(blocks), f"the doc names the four edits: {sorted(blocks)}"
    (tmp_path / "doc_section.py").write_text(blocks["vopt/recipe/sections/sparsify.py"])
    (tmp_path / "doc_stage.py").write_text(blocks["vopt/stages/sparsify.py"])
    # The Recipe block: its imports, and its field lines in a Recipe that takes vopt's place.
    lines = blocks["vopt/recipe/models.py"].splitlines()
    imports = [line for line in lines if line.startswith(("from ", "import "))]
    fields = [line for line in lines if line.startswith("    ") and line.strip() != "..."]
    assert fields, "the doc shows the field on Recipe"
    (tmp_path / "doc_recipe.py").write_text(
        "\n".join(
            [
                "from pydantic import Field",
                "import vopt.recipe.models as models",
                *imports,
                "class Recipe(models.Recipe):",
                *fields,
                "models.Recipe = Recipe",
                "",
            ]
        )
    )
    stages = re.findall(r'^\s*"(\w+)": "([\w.:]+)",', blocks["vopt/registry.py"], re.M)
    assert ("sparsify", "vopt.stages.sparsify:SparsifyStage") in stages
    (tmp_path / "doc_setup.py").write_text(SETUP.format(stages=stages))
    return "import doc_setup"


def test_the_doc_stage_plans_builds_and_keys_its_cache_on_its_section(tmp_path):
    setup = write_plugin(tmp_path)
    recipe = tmp_path / "sparse.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {"name": "sparse", "model": tiny_model("resnet"), "sparsify": {"ratio": 0.5}, "validate": None}
        )
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(recipe.read_text().replace("ratio: 0.5", "ratio: 1.5"))
    checked = vopt_with(tmp_path, setup, "check", bad)
    assert checked.returncode == 2 and "sparsify.ratio" in checked.stdout + checked.stderr, checked.stderr

    build = vopt_with(tmp_path, setup, "build", recipe, "--out", tmp_path / "out", "--json")
    assert build.returncode == 0, build.stderr
    manifest = json.loads(build.stdout)
    steps = {s["stage"]: s for s in manifest["steps"]}
    assert [s["stage"] for s in manifest["steps"]][:3] == ["load", "sparsify", "export"]  # the doc's position
    zeroed = steps["sparsify"]["report"]["zeroed"]
    assert 0.49 <= zeroed <= 0.51, zeroed
    # The export step got the sparse module: the shipped ONNX's conv weights are half zeros too.
    graph = onnx.load(tmp_path / "out" / "sparse" / manifest["artifact"]["file"]).graph
    convs = {n.input[1] for n in graph.node if n.op_type == "Conv"}
    weights = [numpy_helper.to_array(t) for t in graph.initializer if t.name in convs]
    assert weights and 0.45 <= np.mean([float((w == 0).mean()) for w in weights]) <= 0.55
    assert steps["export"]["report"]["parity"]["outputs"]["logits"]["cosine"] >= 0.9999

    changed = vopt_with(tmp_path, setup, "plan", recipe, "--set", "sparsify.ratio=0.25", "--json")
    assert changed.returncode == 0, changed.stderr
    cached = {s["stage"]: s["cached"] for s in json.loads(changed.stdout)["steps"]}
    assert cached["load"] and not cached["sparsify"]  # its config is its cache key
