"""Platform knobs mapped to the real runtime settings: QNN HTP options, OpenVINO streams and model cache,
TensorRT builder settings (checked up to the builder: no GPU here)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


def _build(write_recipe, cli, tmp_path, compile_section, quantize=None):
    recipe = {
        "name": f"opt-{compile_section['target']}",
        "model": tiny_model("resnet"),
        "compile": compile_section,
        "export": {"parity_samples": 2},
        "validate": {"samples": 4},
    }
    if quantize:
        recipe["quantize"] = quantize
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


@pytest.mark.slow
def test_qnn_htp_options_reach_the_execution_provider(write_recipe, cli, tmp_path):
    pytest.importorskip("onnxruntime_qnn")
    m = _build(
        write_recipe,
        cli,
        tmp_path,
        {"target": "qnn", "htp_performance_mode": "burst", "vtcm_mb": 8},
        quantize={"calibration": {"samples": 8}, "check": {"samples": 4, "benchmark": False}},
    )
    opts = m["validation"]["runtime_info"]["provider_options"]
    assert opts["htp_performance_mode"] == "burst" and opts["vtcm_mb"] == "8"
    compile_report = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert compile_report["provider_options"] == opts
    # The HTP simulator ran the model with these options and every conv on the NPU side.
    assert compile_report["placement"]["qnn_nodes"] > 0


def test_qnn_rejects_an_unknown_performance_mode_at_its_line(write_recipe, cli):
    path = write_recipe(
        {
            "name": "q",
            "model": tiny_model("resnet"),
            "compile": {"target": "qnn", "htp_performance_mode": "turbo"},
        }
    )
    res = cli("check", path)
    assert res.exit_code == 2 and "compile.htp_performance_mode" in res.output
    # The EP refuses fp16 precision mode without a SoC: said at plan time, not as a session failure.
    path = write_recipe(
        {
            "name": "q",
            "model": tiny_model("resnet"),
            "compile": {"target": "qnn", "enable_htp_fp16_precision": True},
        },
        "fp16.yaml",
    )
    res = cli("check", path)
    assert res.exit_code == 2 and "enable_htp_fp16_precision needs soc_model" in res.output


@pytest.mark.slow
def test_openvino_streams_and_model_cache(write_recipe, cli, tmp_path, _isolated_cache):
    pytest.importorskip("openvino")
    m = _build(write_recipe, cli, tmp_path, {"target": "openvino", "streams": 1, "model_cache": True})
    info = m["validation"]["runtime_info"]
    assert info["settings"]["NUM_STREAMS"] == 1
    cache = _isolated_cache / "openvino-model-cache"
    assert info["model_cache"] == str(cache)
    assert any(cache.glob("*.blob")), list(cache.iterdir())  # OpenVINO stored the compiled model
    # The IR records the setting for deployments (rt_info runtime_options).
    import openvino as ov

    ir = ov.Core().read_model(str(tmp_path / "out" / "opt-openvino" / "openvino_model" / "model.xml"))
    assert ir.get_rt_info(["runtime_options", "NUM_STREAMS"]).astype(str) == "1"


def test_tensorrt_builder_settings_are_checked_and_recorded_without_a_gpu():
    from vopt.targets.tensorrt import SUPPORTED_MAJOR, TensorRtConfig, builder_settings

    cfg = TensorRtConfig(
        target="tensorrt", builder_optimization_level=5, sparsity=True, version_compatible=True
    )
    assert builder_settings(cfg) == {
        "builder_optimization_level": 5,
        "extra_flags": ["SPARSE_WEIGHTS", "VERSION_COMPATIBLE"],
    }
    assert builder_settings(TensorRtConfig(target="tensorrt")) == {"extra_flags": []}
    assert SUPPORTED_MAJOR == (10, 11)
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        TensorRtConfig(target="tensorrt", builder_optimization_level=6)
