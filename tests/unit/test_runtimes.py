"""The runtime layer: runners as context managers, the static-batch helper, the format table, recorded
session settings, and the interval that decides 'did INT8 pay'."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper


def _linear_onnx(path, batch: int | str = "batch", meta: dict[str, str] | None = None) -> np.ndarray:
    """y = x @ W for x [batch, 8]; returns W."""
    w = np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"])],
        "lin",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for k, v in (meta or {}).items():
        model.metadata_props.add(key=k, value=v)
    onnx.save(model, str(path))
    return w


def test_runner_is_a_context_manager_that_releases_once_even_on_error():
    from vopt.runtimes.base import Runner

    released = []
    run = Runner(run=lambda feeds: feeds, runtime="echo", on_close=lambda: released.append(1))
    with pytest.raises(ValueError), run as r:
        assert r.infer({"x": np.ones(1)})["x"][0] == 1
        raise ValueError("boom")
    run.close()  # a second release is harmless
    assert released == [1]


def test_static_batch_runs_pad_and_trim_on_a_real_session(tmp_path):
    from vopt.runtimes.base import run_batches, run_images
    from vopt.runtimes.ort import runner

    w = _linear_onnx(tmp_path / "static.onnx", batch=4)
    x = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    with runner(tmp_path / "static.onnx") as run:
        assert run.info["static_batch"] == 4 and run.info["input_name"] == "x"
        out = run_images(run, x)["y"]
        also = run_batches(run, "x", [x[:3], x[3:]], static_batch=4)["y"]
    assert out.shape == (6, 4)  # 6 rows in, padded to 8 for two calls, 6 rows out
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(also, x @ w, rtol=1e-5, atol=1e-5)


def test_format_plugins_open_onnx_and_name_what_they_cannot(tmp_path):
    from vopt.registry import get_format
    from vopt.runtimes.base import Runner, Unavailable

    _linear_onnx(tmp_path / "m.onnx")
    with get_format("onnx").open(tmp_path / "m.onnx", accurate=True) as run:
        assert isinstance(run, Runner) and run.runtime == "onnxruntime-cpu"
    missing = get_format("coreml-mlpackage").open(tmp_path / "m.onnx")
    assert isinstance(missing, Unavailable) and "coreml-mlpackage" in missing.reason
    assert get_format("openvino-ir").runtime_name == "openvino"
    assert get_format("coreml-mlpackage").runtime_name is None


def test_ort_runner_applies_the_level_the_artifact_records(tmp_path):
    import json

    from vopt.runtimes.ort import METADATA_KEY, recorded_settings, runner

    _linear_onnx(
        tmp_path / "basic.onnx", meta={METADATA_KEY: json.dumps({"graph_optimization_level": "basic"})}
    )
    _linear_onnx(tmp_path / "plain.onnx")
    assert recorded_settings(tmp_path / "basic.onnx") == {"graph_optimization_level": "basic"}
    assert recorded_settings(tmp_path / "plain.onnx") == {}
    with runner(tmp_path / "basic.onnx") as run:
        assert run.info["settings"] == {"graph_optimization_level": "basic"}
    with runner(tmp_path / "basic.onnx", settings={"graph_optimization_level": "all"}) as run:
        assert run.info["settings"] == {"graph_optimization_level": "all"}  # a caller's choice wins


def test_ratio_interval_and_looks():
    from vopt.bench.timing import looks, ratio_interval, t_quantile

    assert looks(5, 160) == [5, 10, 20, 40, 80, 160]
    assert abs(t_quantile(0.975, 10) - 2.228) < 0.01 and abs(t_quantile(0.975, 100) - 1.984) < 0.01
    ratio, lo, hi = ratio_interval([np.log(2.0)] * 3 + [np.log(2.2), np.log(1.8)])
    assert 1.9 < ratio < 2.1 and 1.0 < lo < ratio < hi
    _, lo, hi = ratio_interval([0.1, -0.1, 0.05, -0.05, 0.0])
    assert lo < 1.0 < hi


def test_interleaved_comparison_finds_a_real_gap_and_stops_early():
    from vopt.bench.timing import compare_until_stable

    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)

    def slow():
        for _ in range(12):
            a @ a

    def fast():
        a @ a

    t = compare_until_stable(slow, fast, min_rounds=5, budget_s=20.0)
    assert t["verdict"] == "faster" and t["low"] > 1.0 and t["ratio"] > 3
    assert t["stopped"] == "interval excludes 1" and t["rounds"] < 160


def test_a_straddling_interval_is_inconclusive_never_did_not_pay():
    from vopt.quant.speed import speed_report
    from vopt.runtimes.base import Runner

    run = Runner(run=lambda f: f, runtime="onnxruntime-cpu")
    tie = {
        "ratio": 1.02,
        "low": 0.95,
        "high": 1.09,
        "rounds": 160,
        "per_round": 3,
        "seconds": 8.0,
        "stopped": "time budget",
        "verdict": "inconclusive",
        "baseline_p50_ms": 10.0,
        "candidate_p50_ms": 9.8,
    }
    r = speed_report(tie, run, run, 1, "int8")
    assert r["status"] == "inconclusive" and r["paid"] is None and r["speedup_ci95"] == [0.95, 1.09]
    assert "inconclusive" in r["verdict"] and "did not pay" not in r["verdict"]
    slower = {
        **tie,
        "ratio": 0.7,
        "low": 0.65,
        "high": 0.75,
        "verdict": "slower",
        "stopped": "interval excludes 1",
    }
    r = speed_report(slower, run, run, 1, "int8")
    assert r["status"] == "ok" and r["paid"] is False


def test_runtimes_never_import_targets_and_speed_code_names_no_target():
    """The layer rule (targets import runtimes, never the reverse), and no target-name dispatch in the code
    that times or checks artifacts: it asks the target's attributes or the artifact's format."""
    import ast
    from pathlib import Path

    from vopt.registry import TARGETS

    root = Path(__file__).resolve().parents[2] / "vopt"
    for path in (root / "runtimes").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("vopt.targets"), f"{path.name} imports {node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("vopt.targets") for a in node.names), path.name
    for rel in ("quant/speed.py", "quant/evaluate.py", "bench/source.py", "bench/timing.py"):
        tree = ast.parse((root / rel).read_text())
        # names in comparisons and dict keys (package names passed to imports and extras are fine)
        used = [
            *(c for n in ast.walk(tree) if isinstance(n, ast.Compare) for c in [n.left, *n.comparators]),
            *(k for n in ast.walk(tree) if isinstance(n, ast.Dict) for k in n.keys if k is not None),
        ]
        names = {c.value for c in used if isinstance(c, ast.Constant)} & set(TARGETS)
        assert not names, f"{rel} compares or keys by target names: {sorted(names)}"
