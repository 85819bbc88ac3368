"""The table commands that need builds (`vopt compare`, `vopt tune`), run as in a CI log (stdout piped,
COLUMNS=80): every build, candidate and failure reason from --json appears whole, one record per line."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model
from tests.unit.test_cli_tables import line_with, run, whole


def test_compare_at_80_columns_prints_build_names_whole(write_recipe, tmp_path):
    name = "resnet-tiny-cpu-fp32-with-a-name-longer-than-a-column"
    recipe = write_recipe(
        {
            "name": name,
            "model": tiny_model("resnet"),
            "export": {"parity_samples": 2},
            "compile": {"target": "cpu"},
            "validate": {"samples": 4},
            "benchmark": {"batch_sizes": [1], "iterations": 3, "warmup": 1, "baseline": False},
        }
    )
    assert run("build", recipe, "--out", tmp_path / "out").exit_code == 0
    build = tmp_path / "out" / name
    rows = json.loads(run("compare", build, "--format", "json").stdout)
    text = run("compare", build).stdout
    assert "…" not in text
    for r in rows:
        line = line_with(text, r["build"], r["target"], r["precision"])
        assert line is not None, text
        assert f"{r['agreement_metric']} {r['agreement']:.4f}" in line


@pytest.mark.slow
def test_tune_at_80_columns_prints_candidates_and_failure_reasons_whole(write_recipe, tmp_path):
    """No candidate holds the gate: each one's reason names the gate, whole (it was cut to `centered_`)."""
    recipe = write_recipe(
        {
            "name": "tune-cpu-tables",
            "model": tiny_model("resnet"),
            "compile": {"target": "cpu"},
            "quantize": {
                "precision": "int8",
                "calibration": {"samples": 8},
                "check": {"samples": 4, "benchmark": False},
            },
            "validate": {"samples": 8, "gates": {"centered_cosine": ">=0.99999"}},
        }
    )
    args = ("tune", recipe, "--out", tmp_path / "out", "--rounds", "1")
    data = json.loads(run(*args, "--json").stdout)
    result = run(*args)  # every candidate's steps are cache hits now
    assert result.exit_code == 3, result.output
    text = result.stdout
    assert "…" not in text
    assert len(data["candidates"]) == 5
    for c in data["candidates"]:
        assert c["status"] == "gate failed" and "centered_cosine" in c["reason"]
        reason = " ".join(c["reason"].split())
        line = line_with(text, c["name"])
        assert line is not None and reason in line, (c, text)
        assert whole(line, "gate failed")
