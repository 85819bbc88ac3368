"""vopt tune: candidates from the scheme's tuning space, each a verified build; the fastest passing one
wins."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import tiny_model
from vopt.quant.schemes.ort_qdq import host_lacks_vnni
from vopt.tune.search import MIN_GAIN


def _recipe(write_recipe, gate: str):
    return write_recipe(
        {
            "name": "tune-cpu",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "quantize": {
                "precision": "int8",
                "calibration": {"samples": 8},
                "check": {"samples": 4, "benchmark": False},
            },
            "validate": {"samples": 8, "gates": {"centered_cosine": gate}},
            "benchmark": {"batch_sizes": [1], "warmup": 1, "iterations": 2},
        }
    )


@pytest.mark.slow
def test_tune_builds_the_scheme_space_and_picks_a_passing_candidate(write_recipe, cli, tmp_path):
    recipe = _recipe(write_recipe, ">=0.5")
    res = cli("tune", recipe, "--out", tmp_path / "out", "--rounds", "2", "--json", "--write-back")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    names = [c["name"] for c in r["candidates"]]
    assert names[0] == "as written" and len(names) == 5  # u8 weights or not x range method, plus the recipe
    assert all(c["status"] == "built" and c["img_s"] > 0 for c in r["candidates"])
    # the tuner times the candidates itself: their builds skip the recipe's benchmark step
    for c in r["candidates"]:
        steps = json.loads((Path(c["build_dir"]) / "manifest.json").read_text())["steps"]
        assert "validate" in [s["stage"] for s in steps] and "benchmark" not in [s["stage"] for s in steps]
    # The recipe's own settings (uint8 GEMM weights where this CPU lacks VNNI, minmax) give the same bytes as
    # that candidate: timed once.
    own = {"quantize.options.u8_weights": host_lacks_vnni(), "quantize.calibration.method": "minmax"}
    twin = next(c for c in r["candidates"] if c["overrides"] == own)
    assert twin["same_artifact_as"] == "as written"
    # the fastest, or one timing cannot tell from it that is more faithful, or the recipe as written
    best, fastest = r["best"], max(c["img_s"] for c in r["candidates"])
    assert best["status"] == "built" and (best["img_s"] * MIN_GAIN >= fastest or best["name"] == "as written")
    if best["overrides"]:
        tuned = yaml.safe_load((tmp_path / "recipe.tuned.yaml").read_text())
        assert tuned["extends"] == ["recipe.yaml"]
        assert cli("check", tmp_path / "recipe.tuned.yaml").exit_code == 0


@pytest.mark.slow
def test_tune_with_gates_no_candidate_holds_exits_3(write_recipe, cli, tmp_path):
    res = cli("tune", _recipe(write_recipe, ">=0.99999"), "--out", tmp_path / "out", "--rounds", "1")
    assert res.exit_code == 3
    assert "no candidate passed the recipe's gates" in res.output and "gate failed" in res.output
