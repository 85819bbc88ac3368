"""Builds with a benchmark section write report.md + report.html + PNG plots; `vopt compare` reads two
builds."""

from __future__ import annotations

import base64
import json
import re

from tests.conftest import tiny_model

PNG = b"\x89PNG\r\n\x1a\n"


def _recipe(name, optimization):
    return {
        "name": name,
        "model": tiny_model("resnet"),
        "compile": {"target": "cpu", "optimization": optimization},
        "validate": {"samples": 4, "gates": {"top1_agreement": ">=0.99"}},
        "benchmark": {"batch_sizes": [1, 2], "warmup": 1, "iterations": 4},
    }


def test_reports_plots_bench_and_compare(write_recipe, cli, tmp_path):
    out = tmp_path / "out"
    for name, level in (("basic", "basic"), ("extended", "extended")):
        res = cli("build", write_recipe(_recipe(name, level), f"{name}.yaml"), "--out", out, "--json")
        assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    bench = m["benchmark"]
    assert bench["status"] == "ok" and bench["batch_sizes"] == [1, 2]
    assert [r["batch"] for r in bench["results"]] == [1, 2]
    assert bench["baseline"]["speedup"] > 0 and bench["baseline"]["pytorch_p50_ms"] > 0
    # the speedup vs PyTorch eager comes from interleaved rounds with a 95% interval, and is a figure only
    # where that interval supports it
    from vopt.bench.timing import describe_ratio, ratio_supported

    base = bench["baseline"]
    low, high = base["speedup_ci95"]
    assert base["rounds"] >= 2 and low <= base["speedup"] <= high
    assert base["supported"] == ratio_supported(low, high)
    shown = describe_ratio(base["speedup"], base["speedup_ci95"])[0]
    assert (
        shown in bench["summary"]
        and shown in next(s for s in m["steps"] if s["stage"] == "benchmark")["report"]["summary"]
    )
    assert all(s["output_bytes"] > 0 for s in m["steps"] if s["stage"] in ("load", "export", "compile"))

    build = out / "extended"
    plots = {p.name: p.read_bytes() for p in (build / "plots").glob("*.png")}
    assert set(plots) == {"latency_vs_batch.png", "size_vs_agreement.png"}
    assert all(data.startswith(PNG) and len(data) > 5000 for data in plots.values())
    html = (build / "report.html").read_text()
    embedded = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 2 and all(base64.b64decode(e).startswith(PNG) for e in embedded)
    # self-contained: no external links or scripts (base64 image data is stripped first: it can spell "http")
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    assert "<link" not in text and "<script" not in text and "http" not in text
    for text in (
        "Stages",
        "Validation",
        "Benchmark",
        "top1_agreement",
        "built-in sample images",
        "PyTorch eager",
    ):
        assert text in html, text
    md = (build / "report.md").read_text()
    assert "![Latency and throughput vs batch size](plots/latency_vs_batch.png)" in md
    assert "| batch | first ms | p50 ms | p90 ms | p99 ms | img/s | runs |" in md
    assert "| compile | no |" in md

    # vopt bench on the build dir: the PyTorch model is found in the cache, so there is a speedup.
    res = cli("bench", build, "-b", "1", "-n", "4", "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["baseline"]["speedup"] > 0

    res = cli("compare", out / "basic", build, "--format", "json", "--plot", tmp_path / "cmp.png")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert [r["build"] for r in rows] == ["basic", "extended"]
    for r in rows:
        assert r["target"] == "cpu" and r["precision"] == "fp32" and r["size_bytes"] > 0
        assert r["p50_ms"] > 0 and r["throughput_ips"] > 0
        assert (r["agreement_metric"], r["agreement"]) == ("top1_agreement", 1.0)
        assert r["speedup_vs_pytorch_ci95"] and isinstance(r["speedup_vs_pytorch_supported"], bool)
    assert rows[0]["validation_set"] == rows[1]["validation_set"]  # both on the same 4 built-in images
    assert (tmp_path / "cmp.png").read_bytes().startswith(PNG)
    md = cli("compare", out / "basic", build, "--format", "markdown").stdout
    assert md.splitlines()[0].startswith("| build | target | precision | size | p50 ms | img/s | agreement |")
    assert len(md.strip().splitlines()) == 4
    table = cli("compare", out / "basic", build).stdout
    assert "basic" in table and "extended" in table and "top1_agreement 1.0000" in table
    assert cli("compare", build, "--format", "xml").exit_code == 2
