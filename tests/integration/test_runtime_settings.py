"""Runtime settings travel with the artifact: recorded in the file and the manifest, applied by vopt's
runners, and the README's loading lines (run here verbatim) load the artifact the same way."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_model

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet(marker: str) -> str:
    text = README.read_text()
    match = re.search(rf"<!-- {marker} -->\s*```python\n(.*?)```", text, re.S)
    assert match, f"README has no {marker} block"
    return match.group(1)


def _build(
    cli, write_recipe, tmp_path, target: str, compile_extra: dict | None = None, *extra: str, **sections: dict
) -> dict:
    recipe = {
        "name": f"rt-{target}",
        "model": tiny_model("resnet"),
        "export": {"parity_samples": 2},
        "compile": {"target": target, **(compile_extra or {})},
        "validate": {"samples": 4},
        **sections,
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json", *extra)
    assert res.exit_code == 0, res.output
    _build.output = res.output
    return json.loads(res.stdout)


def test_cpu_artifact_records_its_session_level_and_the_readme_loads_it(cli, write_recipe, tmp_path):
    import onnxruntime as ort

    m = _build(
        cli,
        write_recipe,
        tmp_path,
        "cpu",
        {"session_optimization": "extended"},
        "--timings",
        quantize={"calibration": {"samples": 8}, "check": {"samples": 4, "rounds": 2}},
    )
    # --timings: every step, and the quantize step's phases, with seconds
    lines = _build.output.splitlines()
    table = lines[next(i for i, ln in enumerate(lines) if ln.startswith("step ") and "seconds" in ln) :]
    for step in ("load", "export", "quantize", "compile", "validate"):
        assert any(re.match(rf"{step}\s+\d+\.\d\d\s+\d+\.\d%", ln) for ln in table), step
    for phase in ("calibrate", "quantize (ort-qdq, int8)", "speed: quantized vs float"):
        assert any(ln.startswith("  " + phase) for ln in table), phase
    assert m["artifact"]["meta"]["runtime"] == {
        "name": "onnxruntime",
        "settings": {"graph_optimization_level": "ORT_ENABLE_EXTENDED"},
    }
    # vopt's own runner (validation) loaded it at the recorded level
    assert m["validation"]["runtime_info"]["settings"] == {"graph_optimization_level": "ORT_ENABLE_EXTENDED"}
    path = str(tmp_path / "out" / "rt-cpu" / m["artifact"]["file"])
    scope: dict = {"path": path}
    exec(readme_snippet("readme-load-onnx"), scope)  # noqa: S102 - the README's own lines, verbatim
    session = scope["session"]
    assert scope["so"].graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    from vopt.runtimes.ort import runner

    x = np.random.default_rng(0).standard_normal((1, 3, 64, 64)).astype(np.float32)
    with runner(path) as ours:
        name = ours.info["input_name"]
        np.testing.assert_allclose(
            session.run(None, {name: x})[0], next(iter(ours({name: x}).values())), atol=1e-5
        )


def test_openvino_ir_records_its_hints_and_the_readme_applies_them(cli, write_recipe, tmp_path):
    pytest.importorskip("openvino")
    m = _build(
        cli,
        write_recipe,
        tmp_path,
        "openvino",
        {"performance_hint": "THROUGHPUT", "inference_precision": "f32"},
    )
    settings = {"PERFORMANCE_HINT": "THROUGHPUT", "INFERENCE_PRECISION_HINT": "f32"}
    assert m["artifact"]["meta"]["runtime"] == {"name": "openvino", "settings": settings}
    xml = tmp_path / "out" / "rt-openvino" / m["artifact"]["file"] / "model.xml"
    from vopt.runtimes.openvino import recorded_settings, runner

    assert recorded_settings(xml) == settings
    scope: dict = {"path": str(xml)}
    exec(readme_snippet("readme-load-openvino"), scope)  # noqa: S102 - the README's own lines, verbatim
    compiled = scope["compiled"]
    assert str(compiled.get_property("PERFORMANCE_HINT")).endswith("THROUGHPUT")
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"
    # vopt's deployment runner (speed checks) applies the same recorded hints
    with runner(xml, deployment=True) as ours:
        assert ours.info["settings"]["PERFORMANCE_HINT"] == "THROUGHPUT"
        assert ours.info["inference_precision"] == "f32"
