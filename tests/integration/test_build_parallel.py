"""`vopt build A B -j 2`: two builder processes on one shared cache directory, then a rerun that is all cache
hits."""

from __future__ import annotations

import json

from tests.conftest import tiny_model


def test_two_recipes_build_in_parallel_on_one_shared_cache(cli, write_recipe, tmp_path):
    cache, out = tmp_path / "shared-cache", tmp_path / "out"
    a = write_recipe(
        {"name": "par-resnet", "model": tiny_model("resnet"), "validate": {"samples": 2}}, "a.yaml"
    )
    b = write_recipe({"name": "par-vit", "model": tiny_model("vit"), "validate": {"samples": 2}}, "b.yaml")
    first = cli("build", a, b, "-j", "2", "--out", out, "--cache-dir", cache, "--json")
    assert first.exit_code == 0, first.output
    manifests = json.loads(first.stdout)
    assert [m["recipe"]["name"] for m in manifests] == ["par-resnet", "par-vit"]
    assert all(m["status"] == "ok" for m in manifests)
    assert "2/2 built" in first.stderr
    assert (
        not list((cache / "tmp").iterdir()) if (cache / "tmp").exists() else True
    )  # no work dirs left behind
    again = cli("build", a, b, "-j", "2", "--out", out, "--cache-dir", cache, "--json")
    assert again.exit_code == 0, again.output
    for m in json.loads(again.stdout):
        assert all(s["cached"] for s in m["steps"]), [(s["stage"], s["cached"]) for s in m["steps"]]


def test_a_failing_recipe_sets_the_exit_code_and_the_other_still_builds(cli, write_recipe, tmp_path):
    ok = write_recipe(
        {"name": "par-ok", "model": tiny_model("resnet"), "validate": {"samples": 2}}, "ok.yaml"
    )
    gate = write_recipe(
        {
            "name": "par-gate",
            "model": tiny_model("resnet"),
            "validate": {"samples": 2, "gates": {"cosine": ">1.5"}},
        },
        "gate.yaml",
    )
    result = cli("build", ok, gate, "-j", "2", "--out", tmp_path / "out", "--cache-dir", tmp_path / "cache")
    assert result.exit_code == 3, result.output  # the gate failure's exit code
    assert (tmp_path / "out" / "par-ok" / "manifest.json").is_file()
    assert "1/2 built" in result.stderr and "failed: " in result.stderr
