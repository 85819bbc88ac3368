"""The shipped demo recipe end to end, as `make demo` runs it (benchmark shortened)."""

from __future__ import annotations

import json

from tests.conftest import REPO


def test_demo_recipe_builds_validates_and_reports(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    out = tmp_path / "build"
    result = cli(
        "build",
        "recipes/examples/demo.yaml",
        "--out",
        out,
        "--json",
        "--set",
        "benchmark.iterations=2",
        "--set",
        "benchmark.warmup=1",
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert [s["stage"] for s in m["steps"]] == ["load", "export", "compile", "validate", "benchmark"]
    assert "RANDOM weights" in result.stderr  # the demo says its weights are random
    v = m["validation"]
    assert v["images"].startswith("built-in sample images") and v["samples"] == 16
    assert v["metrics"]["logits"]["cosine"] > 0.9999 and v["metrics"]["logits"]["centered_cosine"] > 0.9999
    assert all(g["passed"] for g in v["gates"])
    assert v["reference_spread"]["logits"] < 0.99  # a sane random init: outputs depend on the image
    build = out / "demo"
    for name in ("model.onnx", "manifest.json", "report.md", "report.html"):
        assert (build / name).stat().st_size > 0, name
    plots = list((build / "plots").glob("*.png"))
    assert plots and all(p.stat().st_size > 1000 for p in plots)
    assert "data:image/png;base64," in (build / "report.html").read_text()
    assert str(build / "report.html") in result.stderr.replace("\n", "")
