"""Report rendering from hand-written manifests: partial manifests, the sensitivity table, escaping."""

from __future__ import annotations

from vopt.report import make_plots, write_reports
from vopt.report.html import render_html
from vopt.report.markdown import render_markdown


def _manifest(**extra):
    m = {
        "recipe": {"name": "m", "file": "r.yaml"},
        "target": "cpu",
        "status": "ok",
        "vopt_version": "0.1.0",
        "steps": [
            {
                "stage": "load",
                "cached": False,
                "seconds": 1.0,
                "output_bytes": 4_000_000,
                "report": {"summary": "x"},
            },
            {"stage": "compile", "cached": True, "seconds": 0.5, "output_bytes": 1_000_000, "report": {}},
        ],
        "artifact": {"file": "model.onnx", "size_bytes": 1_000_000},
        "warnings": ["<b>careful</b>"],
    }
    m.update(extra)
    return m


def test_minimal_manifest_renders_without_plots(tmp_path):
    m = _manifest()
    assert make_plots(m) == ({}, {})
    write_reports(m, tmp_path)
    assert not (tmp_path / "plots").exists()
    html = (tmp_path / "report.html").read_text()
    assert "&lt;b&gt;careful&lt;/b&gt;" in html and "<b>careful" not in html  # escaped
    assert "| load | no | 1.00 | 4.00 MB | x |" in (tmp_path / "report.md").read_text()


def test_sensitivity_table_any_shape():
    rows = [
        {"layer": "conv1", "centered_cosine": 0.91},
        {"layer": "fc", "centered_cosine": 0.99, "kept_float": True},
    ]
    md = render_markdown(
        _manifest(
            steps=[{"stage": "quantize", "cached": False, "seconds": 2.0, "report": {"sensitivity": rows}}]
        )
    )
    assert "## Quantization sensitivity" in md
    assert "| layer | centered_cosine | kept_float |" in md and "| conv1 | 0.91 | - |" in md
    mapping = render_html(
        _manifest(
            steps=[
                {
                    "stage": "quantize",
                    "cached": False,
                    "seconds": 2.0,
                    "report": {"sensitivity": {"conv1": 0.5, "fc": 0.25}},
                }
            ]
        )
    )
    assert "Quantization sensitivity" in mapping and "conv1" in mapping


def test_not_run_validation_and_agreement_plot(tmp_path):
    not_run = _manifest(
        validation={"status": "not run", "reason": "no Apple device", "images": "builtin", "samples": 4}
    )
    assert "Not run: no Apple device." in render_markdown(not_run)
    m = _manifest(validation={"status": "ok", "task_metrics": {"top1_agreement": 0.875}, "metrics": {}})
    plots, _ = make_plots(m)
    assert set(plots) == {"size_vs_agreement"} and len(plots["size_vs_agreement"]) > 5000
    assert "top-1 agreement: **87.5%**" in render_markdown(m)


def test_thread_sweep_table_and_plot():
    rows = [
        {
            "threads": t,
            "batch": b,
            "first_ms": 2.0,
            "p50_ms": b * t * 1.0,
            "p90_ms": b * t * 1.2,
            "p99_ms": b * t * 1.5,
            "throughput_ips": 1000 / t,
            "iterations": 5,
        }
        for t in (1, 2)
        for b in (1, 4)
    ]
    bench = {
        "status": "ok",
        "runtime": "onnxruntime-cpu",
        "thread_counts": [1, 2],
        "threads": 1,
        "results": rows,
        "baselines": [
            {"batch": 1, "threads": 1, "speedup": 2.0},  # an older manifest: no interval
            {"batch": 1, "threads": 2, "speedup": 3.0, "speedup_ci95": [2.8, 3.2], "rounds": 5},
        ],
    }
    m = _manifest(benchmark=bench)
    md = render_markdown(m, {"latency_vs_batch": "plots/latency_vs_batch.png"})
    assert "| threads | batch | first ms |" in md and "| 2 | 4 | 2 | 8 |" in md
    assert "batch 1, 1 thread, timed" in md and "batch 1, 2 threads, timed" in md
    assert "**3.00x (95% CI 2.80-3.20)**" in md and "speedup inconclusive (2.00x, no interval)" in md
    assert len(make_plots(m)[0]["latency_vs_batch"]) > 5000
    assert "p50 latency: **1.00 ms**" in md  # the first thread setting's smallest batch


def test_an_odd_manifest_never_fails_the_build(tmp_path):
    # A benchmark row from some other tool: latencies as a list, not a number.
    m = _manifest(
        benchmark={
            "status": "ok",
            "results": [{"batch": 1, "p50_ms": [1.0, 2.0]}, {"batch": 2, "p50_ms": {}}],
        }
    )
    write_reports(m, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "plot latency_vs_batch not drawn" in md
    assert "## Stages" in md and "## Benchmark" in md  # the rest of the report is still there
    assert (tmp_path / "report.html").is_file()


def test_an_unchanged_rebuild_reuses_its_plots_and_a_change_redraws_them(tmp_path, monkeypatch):
    """The plots of the build dir being replaced are reused when their data is the same, so an unchanged
    rebuild draws nothing; changed data is drawn again."""
    import vopt.report.plots as plots

    m = _manifest(validation={"status": "ok", "task_metrics": {"top1_agreement": 0.875}, "metrics": {}})
    first = tmp_path / "first"
    first.mkdir()
    write_reports(m, first)
    drawn = (first / "plots" / "size_vs_agreement.png").read_bytes()
    calls = []
    real = plots.size_vs_agreement
    monkeypatch.setattr(plots, "size_vs_agreement", lambda *a: calls.append(a) or real(*a))
    again = tmp_path / "again"
    again.mkdir()
    write_reports(m, again, previous=first)
    assert calls == [] and (again / "plots" / "size_vs_agreement.png").read_bytes() == drawn
    assert "data:image/png;base64," in (again / "report.html").read_text()
    changed = _manifest(validation={"status": "ok", "task_metrics": {"top1_agreement": 0.5}, "metrics": {}})
    third = tmp_path / "third"
    third.mkdir()
    write_reports(changed, third, previous=again)
    assert len(calls) == 1 and (third / "plots" / "size_vs_agreement.png").read_bytes() != drawn
