"""webgpu/webnn compile steps without a browser (validate: null), and the missing-browser exit code."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


def _build(
    cli,
    write_recipe,
    tmp_path,
    compile_section: dict,
    validate=None,
    name: str = "web",
    quantize: dict | None = None,
):
    recipe = write_recipe(
        {
            "name": name,
            "model": tiny_model("resnet"),
            "compile": compile_section,
            "validate": validate,
            **({"quantize": quantize} if quantize else {}),
        }
    )
    return cli("build", recipe, "--out", tmp_path / "out", "--json")


def _model(tmp_path, name: str = "web"):
    import onnx

    return onnx.load(str(tmp_path / "out" / name / "model.onnx"))


def test_web_webgpu_default_is_fp16_with_fp32_io_in_one_file(cli, write_recipe, tmp_path):
    import onnx

    result = _build(cli, write_recipe, tmp_path, {"target": "webgpu"})
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    assert manifest["artifact"]["meta"]["precision"] == "fp16"
    proto = _model(tmp_path)
    kinds = {t.data_type for t in proto.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in kinds
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert (
        proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    )  # dynamic unless static_shapes
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vopt.target"] == "webgpu" and meta["vopt.web.ep"] == "webgpu"
    assert json.loads(meta["vopt.web.fallback_ops"]) == {}
    assert sorted(
        p.name
        for p in (tmp_path / "out" / "web").iterdir()
        if p.is_file() and p.suffix not in (".md", ".html", ".json")
    ) == ["model.onnx"]
    # fp16 halves the weights
    fp32_bytes = next(s for s in manifest["steps"] if s["stage"] == "export")["output_bytes"]
    assert manifest["artifact"]["size_bytes"] < 0.6 * fp32_bytes


def test_web_webgpu_static_shapes_fix_the_batch(cli, write_recipe, tmp_path):
    result = _build(
        cli, write_recipe, tmp_path, {"target": "webgpu", "precision": "fp32", "static_shapes": True}
    )
    assert result.exit_code == 0, result.output
    proto = _model(tmp_path)
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 3, 64, 64]
    assert [d.dim_value for d in proto.graph.output[0].type.tensor_type.shape.dim] == [1, 10]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["vopt.web.freeDimensionOverrides"]) == {"batch": 1}


def test_web_fail_on_fallback_names_the_ops(cli, write_recipe, tmp_path):
    quantize = {
        "precision": "int8",
        "calibration": {"samples": 4},
        "check": {"samples": 2, "benchmark": False},
        "default_gates": False,  # a random-weight model's int8: the compile step's refusal is what is tested
    }
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        {"target": "webgpu", "precision": "int8", "fail_on_fallback": True},
        quantize=quantize,
    )
    assert result.exit_code == 1, result.output
    assert "[compile]" in result.output and "QuantizeLinear" in result.output and "WebGPU" in result.output


@pytest.mark.parametrize("target", ["webgpu", "webnn"])
def test_web_build_without_a_browser_exits_4_with_how_to_install(
    cli, write_recipe, tmp_path, monkeypatch, target
):
    from vopt.runtimes import browser

    monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(browser, "_shared", None)
    result = _build(
        cli, write_recipe, tmp_path, {"target": target, "precision": "fp32"}, validate={"samples": 2}
    )
    assert result.exit_code == 4, result.output
    assert "apt-get install chromium" in result.output


def test_web_static_shapes_fold_the_shape_arithmetic_of_a_vit(cli, write_recipe, tmp_path):
    recipe = write_recipe(
        {
            "name": "web",
            "model": tiny_model("vit"),
            "validate": None,
            "compile": {"target": "webgpu", "precision": "fp32", "static_shapes": True},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    exported = next(s for s in manifest["steps"] if s["stage"] == "export")["report"]["nodes"]
    proto = _model(tmp_path)
    ops = {n.op_type for n in proto.graph.node}
    assert "Shape" not in ops  # ORT would keep this arithmetic on CPU next to the WebGPU EP
    assert len(proto.graph.node) < exported


def test_web_int8_goes_through_the_quantize_stage(cli, write_recipe, tmp_path):
    """One int8 path: the quantize stage's calibration (with its fingerprint) and check; compile keeps it."""
    quantize = {
        "precision": "int8",
        "calibration": {"samples": 4},
        "check": {"samples": 2, "benchmark": False},
        "default_gates": False,  # the path is under test here; 4 calibration images judge nothing
    }
    result = _build(cli, write_recipe, tmp_path, {"target": "webgpu", "precision": "int8"}, quantize=quantize)
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    steps = {s["stage"]: s for s in manifest["steps"]}
    assert steps["quantize"]["report"]["scheme"] == "ort-qdq"  # webgpu's int8_scheme
    assert steps["quantize"]["report"]["calibration"]["samples"] == 4
    assert steps["quantize"]["report"]["calibration"]["fingerprint"]
    assert "from the quantize stage" in steps["compile"]["report"]["summary"]
    assert manifest["artifact"]["meta"]["precision"] == "int8"
    assert sum(n.op_type == "QuantizeLinear" for n in _model(tmp_path).graph.node) > 0


def test_web_int8_without_a_quantize_section_is_a_recipe_error(cli, write_recipe):
    recipe = write_recipe(
        {"name": "web", "model": tiny_model("resnet"), "compile": {"target": "webgpu", "precision": "int8"}}
    )
    result = cli("check", recipe)
    assert result.exit_code == 2, result.output
    assert "compile.precision: int8 on webgpu is made by the quantize stage" in result.output
    assert "quantize: {precision: int8}" in result.output


def test_web_calibration_samples_is_retired_with_what_to_write_instead(cli, write_recipe):
    recipe = write_recipe(
        {
            "name": "web",
            "model": tiny_model("resnet"),
            "compile": {"target": "webgpu", "precision": "int8", "calibration_samples": 4},
        }
    )
    result = cli("check", recipe)
    assert result.exit_code == 2, result.output
    line = next(ln for ln in result.output.splitlines() if "compile.calibration_samples" in ln)
    assert line.strip().split(": ")[0].endswith(".yaml:" + str(_line_of(recipe, "calibration_samples")))
    assert "quantize: {precision: int8, calibration: {samples: N}}" in line


def _line_of(path, key: str) -> int:
    return next(i for i, text in enumerate(path.read_text().splitlines(), 1) if key in text)
