"""An artifact that cannot run here (Core ML on Linux): the build still succeeds and says why
validation and the benchmark did not run; `vopt bench` on it exits 4."""

from __future__ import annotations

import json
import sys

import pytest

from tests.conftest import tiny_model


@pytest.mark.skipif(sys.platform == "darwin", reason="Core ML runs on macOS")
def test_benchmark_not_run_where_the_runtime_is_missing(write_recipe, cli, tmp_path):
    pytest.importorskip("coremltools")
    recipe = write_recipe(
        {
            "name": "cml",
            "model": tiny_model("resnet"),
            "compile": {"target": "coreml"},
            "validate": {"samples": 2, "gates": {"cosine": ">=0.99"}},
            "benchmark": {"batch_sizes": [1], "iterations": 3},
        }
    )
    res = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    assert m["validation"]["status"] == "not run" and m["benchmark"]["status"] == "not run"
    assert "macOS" in m["benchmark"]["reason"]
    assert any("gates not checked" in w for w in m["warnings"])
    assert "Not run:" in (tmp_path / "out" / "cml" / "report.md").read_text()
    bench = cli("bench", tmp_path / "out" / "cml")
    assert bench.exit_code == 4 and "macOS" in bench.output
