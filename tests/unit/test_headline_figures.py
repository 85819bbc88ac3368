"""Headline figures that mean what they say: a speed ratio is a figure only when its 95% interval supports it
(else "inconclusive"), in the benchmark summary, the report's facts, `vopt compare` and the build summary; the
size-vs-agreement plot puts only points measured on the same images side by side; one batch size is a table
row, not a chart."""

from __future__ import annotations

import pytest

from vopt.bench.harness import _summary as bench_summary
from vopt.bench.timing import describe_ratio, ratio_supported
from vopt.cli.build import headline_lines
from vopt.report import data, make_plots
from vopt.report.compare import compare_rows, display_cells
from vopt.report.document import build_document
from vopt.report.markdown import render_markdown


@pytest.mark.parametrize(
    ("ci", "supported"),
    [
        ((2.31, 2.75), True),  # decided and pinned down
        ((0.55, 0.80), True),  # decidedly slower is a figure too
        ((0.95, 1.20), False),  # straddles 1
        ((3.1, 528.0), False),  # decided, but the figure could be anything in a factor of 170
        ((0.0, float("inf")), False),  # one round: no interval
        ((None, None), False),
    ],
)
def test_a_ratio_is_supported_when_its_interval_excludes_1_and_spans_at_most_a_factor_of_2(ci, supported):
    assert ratio_supported(*ci) is supported


def test_describe_ratio_says_inconclusive_with_the_ratio_and_its_interval():
    assert describe_ratio(2.52, [2.31, 2.75]) == ("2.52x (95% CI 2.31-2.75)", True)
    assert describe_ratio(664.0, [3.1, 9000.0]) == ("inconclusive (664.00x, 95% CI 3.10-9000.00)", False)
    assert describe_ratio(40.45, None) == ("inconclusive (40.45x, no interval)", False)  # an older manifest


def _bench(speedup: float, ci: list[float] | None, batches=(1,)) -> dict:
    rows = [
        {
            "batch": b,
            "threads": None,
            "first_ms": 1.0,
            "p50_ms": 0.4 * b,
            "p90_ms": 0.5 * b,
            "p99_ms": 0.6 * b,
            "throughput_ips": 2500.0,
            "iterations": 20,
        }
        for b in batches
    ]
    base = {"batch": 1, "threads": None, "pytorch_p50_ms": 0.4 * speedup, "artifact_p50_ms": 0.4}
    base.update(speedup=speedup, rounds=2)
    if ci is not None:
        base["speedup_ci95"] = ci
    bench = {"status": "ok", "runtime": "onnxruntime-cpu", "thread_counts": [None], "threads": None}
    bench.update(results=rows, baseline=base, load_average=7.8, cpus=2)
    return bench


def _manifest(bench: dict | None = None, **extra) -> dict:
    m = {
        "recipe": {"name": "tiny", "file": "r.yaml"},
        "target": "cpu",
        "precision": "int8",
        "status": "ok",
        "steps": [
            {"stage": "load", "cached": False, "seconds": 1.0, "output_bytes": 4_000_000, "report": {}}
        ],
        "artifact": {"file": "model.onnx", "size_bytes": 1_000_000},
        "warnings": ["benchmark: the machine is busy (load average 7.8 on 2 CPUs): timings are noisy"],
    }
    if bench is not None:
        m["benchmark"] = bench
    m.update(extra)
    return m


def test_an_unsupported_664x_is_inconclusive_in_the_summary_the_facts_and_compare():
    bench = _bench(664.0, [3.1, 9000.0])
    assert bench_summary(bench) == (
        "onnxruntime-cpu: p50 0.40 ms at batch 1, 2500.0 img/s at batch 1, "
        "vs PyTorch eager inconclusive (664.00x, 95% CI 3.10-9000.00)"
    )
    m = _manifest(bench)
    facts = dict(build_document(m, {}).facts)
    assert facts["vs PyTorch eager"] == "inconclusive (664.00x, 95% CI 3.10-9000.00)"
    md = render_markdown(m)
    assert "**664" not in md and "speedup inconclusive (664.00x" in md
    (row,) = compare_rows([("b", m)])
    assert row["speedup_vs_pytorch_supported"] is False and row["speedup_vs_pytorch_ci95"] == [3.1, 9000.0]
    assert display_cells(row)[7] == "inconclusive"


def test_a_supported_ratio_is_a_figure_everywhere():
    bench = _bench(2.52, [2.31, 2.75])
    assert bench_summary(bench).endswith(", 2.52x (95% CI 2.31-2.75) vs PyTorch eager")
    m = _manifest(bench)
    assert dict(build_document(m, {}).facts)["vs PyTorch eager"] == "2.52x (95% CI 2.31-2.75)"
    assert "a speedup of **2.52x (95% CI 2.31-2.75)**" in render_markdown(m)
    assert display_cells(compare_rows([("b", m)])[0])[7] == "2.52x"


def test_one_batch_size_is_a_table_row_not_a_chart():
    one, two = _manifest(_bench(2.5, [2.3, 2.7])), _manifest(_bench(2.5, [2.3, 2.7], batches=(1, 8)))
    assert "latency_vs_batch" not in make_plots(one)[0]
    assert "| 1 | 1 | 0.4 | 0.5 | 0.6 | 2500 | 20 |" in render_markdown(one)
    assert "latency_vs_batch" in make_plots(two)[0]


def _images(*names: str) -> list[dict]:
    return [{"file": n, "sha256": f"sha-{n}"} for n in names]


def _quantized(check_images: list[dict], validate_images: list[dict]) -> dict:
    """A quantized build whose quantize check measured top-1 agreement 0.98 on `check_images`, and validation
    0.96 on `validate_images`."""
    quantize = {
        "stage": "quantize",
        "cached": False,
        "seconds": 9.0,
        "output_bytes": 1_100_000,
        "report": {
            "check": {
                "status": "ok",
                "images": len(check_images),
                "distinct_images": len(check_images),
                "reference": "float ONNX on onnxruntime-cpu",
                "task_metrics": {"top1_agreement": 0.98},
            },
            "data": {"calibration_images": _images("c1", "c2"), "check_images": check_images},
            "speed": {
                "status": "ok",
                "runtime": "onnxruntime-cpu",
                "speedup": 1.563,
                "speedup_ci95": [1.212, 2.015],
            },
        },
    }
    compile_ = {"stage": "compile", "cached": False, "seconds": 0.1, "output_bytes": 1_000_000, "report": {}}
    m = _manifest()
    m["steps"] += [quantize, compile_]
    m["validation"] = {
        "status": "ok",
        "samples": len(validate_images),
        "distinct_images": len(validate_images),
        "task_metrics": {"top1_agreement": 0.96},
        "intervals": {"top1_agreement": {"n": len(validate_images), "ci95": [0.7, 0.99]}},
        "data": {"how": "the calibration data's held-out part", "validate_images": validate_images},
    }
    return m


def test_size_vs_agreement_plots_the_quantize_check_only_beside_validation_on_the_same_images():
    same = data.agreement_points(_quantized(_images("a", "b", "c"), _images("c", "b", "a")))
    assert [label for label, _, _ in same.points] == [
        "original (PyTorch), the reference",
        "after quantize (its check, vs float ONNX on onnxruntime-cpu)",
        "cpu int8 (final, validation)",
    ]
    assert same.images == "validation's 3 images" and same.left_out == []

    m = _quantized(_images("x", "y"), _images("a", "b", "c"))
    other = data.agreement_points(m)
    assert [label for label, _, _ in other.points] == [
        "original (PyTorch), the reference",
        "cpu int8 (final, validation)",
    ]
    assert other.left_out == [
        "after quantize: top-1 agreement 0.9800 on its own check's 2 images, another set than validation's: "
        "not plotted beside it"
    ]
    md = render_markdown(m, {"size_vs_agreement": "plots/size_vs_agreement.png"})
    assert "Every point was measured on the same images, validation's 3 images" in md
    assert "Not plotted: after quantize: top-1 agreement 0.9800 on its own check's 2 images" in md


def test_the_build_summary_ends_with_agreement_and_its_interval_and_the_speedup_over_float():
    m = _quantized(_images("a", "b", "c"), _images("a", "b", "c"))
    assert headline_lines(m) == [
        "top-1 agreement with the original model: 96.0% on 3 images held out from calibration "
        "(95% CI 70.0-99.0%)",
        "speed-up of int8 over float on onnxruntime-cpu: 1.56x (95% CI 1.21-2.02), both timed interleaved",
    ]
    speed = m["steps"][1]["report"]["speed"]
    speed.update(status="inconclusive", speedup=1.02, speedup_ci95=[0.95, 1.1])
    assert headline_lines(m)[1] == (
        "speed-up of int8 over float on onnxruntime-cpu: inconclusive (1.02x, 95% CI 0.95-1.10)"
    )
    assert headline_lines(_manifest()) == []  # nothing measured, nothing said
