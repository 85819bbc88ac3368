"""The small commands, in process: check, recipes, schema, plan, doctor, --version."""

from __future__ import annotations

import json

from tests.conftest import REPO, tiny_model


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("vopt ")


def test_check_ok_and_bad(cli, write_recipe):
    good = write_recipe({"name": "good", "model": tiny_model("resnet")}, "good.yaml")
    bad = write_recipe({"name": "bad", "model": {**tiny_model("resnet"), "sourse": "hf"}}, "bad.yaml")
    assert cli("check", good).exit_code == 0
    result = cli("check", good, bad)
    assert result.exit_code == 2
    assert "model.sourse: unknown key (did you mean `source`?)" in result.stderr
    assert "Traceback" not in result.output


def test_recipes_lists_shipped_recipes(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    result = cli("recipes", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    demo = next(r for r in rows if r["file"].endswith("examples/demo.yaml"))
    assert demo["family"] == "efficientnet" and demo["target"] == "openvino" and demo["ok"]
    assert all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]


def test_schema_is_json_schema_with_every_section(cli, tmp_path):
    result = cli("schema")
    schema = json.loads(result.stdout)
    for section in (
        "model",
        "preprocess",
        "fuse",
        "prune",
        "export",
        "quantize",
        "compile",
        "validate",
        "benchmark",
        "extends",
    ):
        assert section in schema["properties"], section
    out = tmp_path / "s.json"
    assert cli("schema", "-o", out).exit_code == 0
    assert json.loads(out.read_text()) == schema


def test_plan_text_runs_nothing(cli, write_recipe):
    recipe = write_recipe({"name": "p", "model": tiny_model("resnet")})
    result = cli("plan", recipe)
    assert result.exit_code == 0
    assert "# resolved recipe" in result.stdout
    assert "1. load       miss" in result.stdout
    assert "3. compile    miss (input not built yet)" in result.stdout


def test_doctor_json_lists_every_target(cli):
    from vopt.registry import TARGETS

    result = cli("doctor", "--json")
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert {t["target"] for t in data["targets"]} == set(TARGETS)
    onnxruntime = next(b for b in data["backends"] if b["module"] == "onnxruntime")
    assert onnxruntime["installed"] and onnxruntime["version"]


def test_recipe_reference_doc_is_up_to_date():
    from vopt.recipe.reference import render_reference

    doc = (REPO / "docs" / "recipe-reference.md").read_text()
    assert doc == render_reference(), (
        "regenerate: .venv/bin/python -m vopt.recipe.reference > docs/recipe-reference.md"
    )


def test_plan_passes_for_every_shipped_recipe(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    if not (REPO.parent / "shared/data/imagenet-samples").is_dir():  # the real-model recipes' labelled photos
        from vopt.datasets.images import SAMPLES_DIR

        monkeypatch.setenv("VOPT_IMAGENET", str(SAMPLES_DIR))
    recipes = sorted(p for p in (REPO / "recipes").glob("*.yaml")) + [
        REPO / "recipes" / "examples" / "demo.yaml"
    ]
    assert len(recipes) >= 7
    for path in recipes:
        result = cli("plan", path, "--json")
        assert result.exit_code == 0, (path, result.output)
        assert json.loads(result.stdout)["steps"][0]["stage"] == "load"


def test_check_runs_the_planner_too(cli, write_recipe):
    recipe = write_recipe({"name": "q", "model": tiny_model("resnet"), "quantize": {"precision": "bf16"}})
    result = cli("check", recipe)
    assert result.exit_code == 2 and "bf16" in result.stderr


def test_compare_and_bench_on_a_non_build_dir_exit_2(cli, tmp_path):
    assert cli("compare", tmp_path, tmp_path).exit_code == 2
    (tmp_path / "manifest.json").write_text("[1, 2]")
    result = cli("compare", tmp_path)
    assert result.exit_code == 2 and "not a vopt manifest" in result.stderr


def test_a_scheme_the_target_cannot_compile_is_a_plan_time_error(cli, write_recipe):
    recipe = write_recipe(
        {
            "name": "x",
            "model": tiny_model("resnet"),
            "quantize": {"scheme": "nncf"},
            "compile": {"target": "cpu"},
        }
    )
    result = cli("plan", recipe)
    assert result.exit_code == 2 and "makes openvino-ir, but the cpu target compiles onnx" in result.stderr


def test_libraries_child_processes_come_from_a_fork_server():
    # OpenVINO's telemetry starts a process on every convert_model, from a worker thread: forked from this
    # multi-threaded process, such a child once hung on an inherited lock and ignored SIGTERM
    import multiprocessing
    import sys

    from vopt.cli.app import make_app

    make_app()
    if sys.platform.startswith("linux"):
        assert multiprocessing.get_start_method() == "forkserver"
