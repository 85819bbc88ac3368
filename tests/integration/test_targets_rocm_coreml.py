"""rocm (fp16 ONNX checked on ORT CPU), cpu (ORT-optimized, .ort) and coreml (a loadable .mlpackage; no
prediction off macOS) through full `vopt build` runs on tiny models."""

from __future__ import annotations

import json
import platform

import pytest

from tests.conftest import tiny_model


def _build(write_recipe, cli, tmp_path, name, model, compile_, **extra):
    recipe = {
        "name": name,
        "model": model,
        "export": {"parity_samples": 2},
        "compile": compile_,
        "validate": {"samples": 6, "batch": 3},
        **extra,
    }
    return cli("build", write_recipe(recipe, name=f"{name}.yaml"), "--out", tmp_path / "out", "--json")


@pytest.mark.slow
@pytest.mark.parametrize("family", ["resnet", "vit"])
def test_rocm_fp16_with_fp32_io_runs_on_ort(write_recipe, cli, tmp_path, family):
    result = _build(write_recipe, cli, tmp_path, f"rocm-{family}", tiny_model(family), {"target": "rocm"})
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    rep = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert rep["fp16_initializers"] > 10 and rep["io_types"] == ["float32"]
    v = m["validation"]
    assert v["runtime"] == "onnxruntime-cpu" and "no AMD GPU" in v["runtime_info"]["note"]
    logits = v["metrics"]["logits"]
    # fp16 rounding is visible but small.
    assert 0 < logits["max_abs_diff"] < 0.05 and logits["centered_cosine"] > 0.999
    shown = json.loads(cli("inspect", tmp_path / "out" / f"rocm-{family}", "--json").stdout)
    assert shown["precision_mix"].get("fp16", 0) > shown["precision_mix"].get("fp32", 0)
    assert shown["metadata"]["vopt.precision"] == "fp16"


@pytest.mark.slow
def test_cpu_artifact_and_ort_format(write_recipe, cli, tmp_path):
    result = _build(
        write_recipe, cli, tmp_path, "cpu-vit", tiny_model("vit"), {"target": "cpu", "ort_format": True}
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert (
        m["validation"]["runtime"] == "onnxruntime-cpu"
        and m["validation"]["metrics"]["logits"]["cosine"] > 0.9999
    )
    # the .ort flatbuffer reaches the build directory next to the ONNX, and ORT loads it
    import onnxruntime as ort

    ort_file = tmp_path / "out" / "cpu-vit" / "model.ort"
    assert ort_file.is_file() and (tmp_path / "out" / "cpu-vit" / "model.onnx").is_file()
    assert (
        ort.InferenceSession(str(ort_file), providers=["CPUExecutionProvider"]).get_inputs()[0].name
        == "pixel_values"
    )


@pytest.mark.slow
def test_cpu_int8_qdq_runs_on_ort(write_recipe, cli, tmp_path):
    # No compile.precision: the artifact is labelled by what it is (the quantize stage's int8), not the
    # fp32 default.
    result = _build(
        write_recipe,
        cli,
        tmp_path,
        "cpu-int8",
        tiny_model("resnet"),
        {"target": "cpu"},
        quantize={
            "precision": "int8",
            "calibration": {"samples": 16},
            "check": {"samples": 4, "benchmark": False},
        },
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    comp = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert "quantized" in comp["summary"]
    v = m["validation"]
    assert v["runtime"] == "onnxruntime-cpu" and 0.9 < v["metrics"]["logits"]["centered_cosine"] < 0.99999
    shown = json.loads(cli("inspect", tmp_path / "out" / "cpu-int8", "--json").stdout)
    mix = shown["precision_mix"]  # uint8 weights where ORT's U8U8 kernels are chosen (CPUs without VNNI)
    assert shown["metadata"]["vopt.precision"] == "int8" and mix.get("int8", 0) + mix.get("uint8", 0) > 0
    assert m["artifact"]["meta"]["precision"] == "int8"


@pytest.mark.slow
def test_rocm_keeps_a_qdq_model_and_refuses_int8_without_quantize(write_recipe, cli, tmp_path):
    """fp16 conversion of a QDQ model made its scales fp16 (InvalidGraph at DequantizeLinear): kept as it
    is."""
    result = _build(
        write_recipe,
        cli,
        tmp_path,
        "rocm-int8",
        tiny_model("resnet"),
        {"target": "rocm"},
        quantize={
            "precision": "int8",
            "calibration": {"samples": 8, "batch": 4},
            "check": {"samples": 4, "benchmark": False},
        },
    )
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    rep = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert rep["fp16_initializers"] == 0 and any("kept as it is" in w for w in rep["warnings"])
    assert m["artifact"]["meta"]["precision"] == "int8"
    assert m["validation"]["metrics"]["logits"]["centered_cosine"] > 0.9
    shown = json.loads(cli("inspect", tmp_path / "out" / "rocm-int8", "--json").stdout)
    assert shown["metadata"]["vopt.precision"] == "int8"
    # compile.precision int8 is refused when the recipe is read, before load and export run
    bad = write_recipe(
        {"name": "r8", "model": tiny_model("resnet"), "compile": {"target": "rocm", "precision": "int8"}},
        name="r8.yaml",
    )
    planned = cli("plan", bad)
    assert planned.exit_code == 2 and "compile.precision" in planned.output


@pytest.mark.slow
def test_coreml_writes_loadable_mlpackage(write_recipe, cli, tmp_path):
    pytest.importorskip("coremltools")
    result = _build(write_recipe, cli, tmp_path, "cm", tiny_model("resnet"), {"target": "coreml"})
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    rep = next(s for s in m["steps"] if s["stage"] == "compile")["report"]
    assert rep["converter"] == "torch.export" and rep["spec"]["problems"] == []
    assert rep["spec"]["outputs"] == ["logits"] and rep["spec"]["inputs"] == {"pixel_values": [1, 3, 64, 64]}
    # the io spec is the package's (fixed batch), not the ONNX export's ['batch', 3, 64, 64]
    assert m["artifact"]["io"]["inputs"] == [
        {"name": "pixel_values", "shape": [1, 3, 64, 64], "dtype": "float32"}
    ]
    assert m["artifact"]["io"]["outputs"] == [{"name": "logits", "shape": [1, 10], "dtype": "float32"}]
    assert m["artifact"]["meta"]["precision"] == "fp16"
    pkg = tmp_path / "out" / "cm" / "model.mlpackage"
    from vopt.targets.coreml import read_back

    spec = read_back(pkg, ["pixel_values"], ["logits"])  # loads the spec back without Core ML
    assert spec["problems"] == [] and spec["ops"] > 20
    assert json.loads(spec["metadata"]["vopt.preprocess"])["mean"] == [0.485, 0.456, 0.406]
    shown = json.loads(cli("inspect", pkg, "--json").stdout)
    assert shown["format"] == "coreml-mlpackage"
    assert shown["inputs"][0]["dtype"] == "float32" and shown["precision_mix"].get("fp16", 0) > 0
    v = m["validation"]
    if platform.system() != "Darwin":
        assert v["status"] == "not run" and "macOS" in v["reason"]
    else:
        assert v["status"] == "ok"


@pytest.mark.slow
def test_coreml_names_the_op_detr_cannot_convert(write_recipe, cli, tmp_path):
    pytest.importorskip("coremltools")
    result = _build(
        write_recipe, cli, tmp_path, "cm-detr", tiny_model("detr"), {"target": "coreml"}, validate=None
    )
    assert result.exit_code == 1
    assert "[compile]" in result.output and "new_ones" in result.output, result.output


def test_coreml_refuses_int8_compute_without_quantize(write_recipe, cli):
    """int8 without a quantize section used to build fp16 compute labelled int8; now refused at plan time."""
    bad = write_recipe(
        {"name": "c8", "model": tiny_model("resnet"), "compile": {"target": "coreml", "precision": "int8"}}
    )
    planned = cli("plan", bad)
    assert planned.exit_code == 2 and "coreml computes in fp16 or fp32, not int8" in planned.output
    ok = write_recipe(
        {
            "name": "c8q",
            "model": tiny_model("resnet"),
            "compile": {"target": "coreml", "precision": "int8"},
            "quantize": {"precision": "int8"},
        },
        name="ok.yaml",
    )
    assert cli("plan", ok).exit_code == 0
