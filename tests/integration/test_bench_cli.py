"""`vopt bench` on tiny ONNX files: every field, batch sweeps, static batch, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

FIELDS = {
    "runtime",
    "runtime_info",
    "threads",
    "cpus",
    "load_average",
    "batch_sizes",
    "skipped_batch_sizes",
    "load_ms",
    "cold_ms",
    "results",
    "peak_rss_mb",
    "runtime_rss_mb",
    "artifact_bytes",
    "settings",
    "summary",
    "artifact",
    "target",
    "notes",
}
ROW_FIELDS = {
    "batch",
    "first_ms",
    "mean_ms",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "min_ms",
    "iterations",
    "throughput_ips",
}


def tiny_onnx(path, batch="N", size=32):
    """Conv -> ReLU -> global pool -> Gemm: a real little classifier, built with onnx.helper (no torch)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.standard_normal((8, 10)).astype(np.float32), "fc"),
    ]
    nodes = [
        helper.make_node("Conv", ["pixel_values", "w"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("MatMul", ["f", "fc"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def test_bench_onnx_produces_every_field(cli, tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    res = cli(
        "bench",
        model,
        "--batch-sizes",
        "1,4",
        "--warmup",
        "2",
        "--iterations",
        "8",
        "--threads",
        "1",
        "--json",
    )
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert set(r) >= FIELDS, FIELDS - set(r)
    assert r["runtime"] == "onnxruntime-cpu" and r["target"] == "cpu" and r["threads"] == 1
    assert r["batch_sizes"] == [1, 4] and r["skipped_batch_sizes"] == []
    assert r["artifact_bytes"] == model.stat().st_size
    assert r["cold_ms"] > 0 and r["load_ms"] > 0 and r["peak_rss_mb"] > 10
    for row, batch in zip(r["results"], [1, 4], strict=True):
        assert set(row) >= ROW_FIELDS
        assert row["batch"] == batch and row["iterations"] == 8
        assert 0 < row["min_ms"] <= row["p50_ms"] <= row["p90_ms"] <= row["p99_ms"]
        assert row["throughput_ips"] == pytest.approx(batch * 1e3 / row["p50_ms"])
        assert row["threads"] == 1
    assert "baseline" not in r and any("no PyTorch model" in n for n in r["notes"])


def test_bench_static_batch_runs_only_its_own_size(cli, tmp_path):
    model = tiny_onnx(tmp_path / "static.onnx", batch=2)
    res = cli("bench", model, "--batch-sizes", "1,2,8", "--iterations", "3", "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["batch_sizes"] == [2] and r["skipped_batch_sizes"] == [1, 8]
    assert any("static" in n for n in r["notes"])


def test_bench_time_bound(cli, tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    res = cli("bench", model, "--seconds", "0.2", "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)["results"][0]
    assert r["iterations"] >= 3 and r["iterations"] * r["mean_ms"] >= 150  # ran for about 0.2 s


def test_bench_bad_inputs_exit_2(cli, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    assert cli("bench", tmp_path / "missing").exit_code == 2
    assert cli("bench", tmp_path / "notes.txt").exit_code == 2
    model = tiny_onnx(tmp_path / "tiny.onnx")
    res = cli("bench", model, "--batch-sizes", "1,x")
    assert res.exit_code == 2 and "--batch-sizes" in res.output
    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli("bench", empty).exit_code == 2  # a directory that is not a build: a usage error


def test_batch_size_the_runtime_refuses_is_skipped_not_fatal(cli, tmp_path):
    """An artifact whose io says 'dynamic batch' but whose graph only takes batch 1 (a fixed Reshape)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    shape = numpy_helper.from_array(np.array([1, 3 * 8 * 8], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["pixel_values", "shape"], ["logits"])],
        "fixed",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 192])],
        [shape],
    )
    path = tmp_path / "fixed.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    res = cli("bench", path, "-b", "1,2", "-n", "3", "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["batch_sizes"] == [1] and r["skipped_batch_sizes"] == [2]
    assert any(n.startswith("batch 2 failed on onnxruntime-cpu") for n in r["notes"])


def test_bench_openvino_ir(cli, tmp_path):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "ir" / "tiny.xml"
    xml.parent.mkdir()
    ov.save_model(ov.convert_model(str(tiny_onnx(tmp_path / "tiny.onnx"))), str(xml))
    res = cli("bench", xml, "-b", "1,2", "-n", "3", "--warmup", "1", "--threads", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["target"] == "openvino" and r["runtime"].startswith("openvino")
    assert r["batch_sizes"] == [1, 2] and r["threads"] == 1
    assert r["artifact_bytes"] == xml.stat().st_size + xml.with_suffix(".bin").stat().st_size


def test_bench_thread_sweep(cli, tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    res = cli("bench", model, "-b", "1,2", "-t", "1,2", "-n", "3", "--warmup", "1", "--json")
    assert res.exit_code == 0, res.output
    r = json.loads(res.stdout)
    assert r["thread_counts"] == [1, 2] and r["threads"] == 1
    assert [(row["threads"], row["batch"]) for row in r["results"]] == [(1, 1), (1, 2), (2, 1), (2, 2)]
    assert cli("bench", model, "-t", "0").exit_code == 2
