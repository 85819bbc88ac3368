"""webgpu/webnn pieces that need no browser: op tables, fallback reports, recipes, missing-browser errors."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _graph(op: str, opset: int = 17):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node(op, ["r", "r"] if op == "Mod" else ["r"], ["y"]),
    ]
    if op == "Mod":
        nodes[1].attribute.append(helper.make_attribute("fmod", 1))
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", opset)]
    )
    onnx.checker.check_model(model)
    return model


def test_web_op_table_parses_the_shipped_docs_format():
    from vopt.web.ops import parse_doc

    table = parse_doc(
        "| Operator | Opset | Comments |\n|:--:|:--:|--|\n"
        "| Add | ai.onnx(7-12,13,14+) |  |\n| GridSample | ai.onnx(16-19); com.ms.internal.nhwc(16-19) | |\n"
    )
    assert table["ai.onnx"]["Add"] == [(7, 12), (13, 13), (14, None)]
    assert table["ai.onnx"]["GridSample"] == [(16, 19)]
    assert table["com.ms.internal.nhwc"]["GridSample"] == [(16, 19)]


def test_web_vendored_tables_know_the_common_vision_ops():
    from vopt.web.ops import supported, tables

    assert tables()["source"].startswith("onnxruntime-web 1.30.0")
    for ep in ("webgpu", "webnn"):
        for op in ("Conv", "MatMul", "Softmax", "LayerNormalization", "Gemm", "GlobalAveragePool"):
            assert supported(ep, "", op, 17), (ep, op)
    assert not supported("webgpu", "", "GridSample", 20)  # opset range matters, not just the name
    assert supported("webgpu", "", "GridSample", 17)


def test_web_check_model_reports_fallback_ops():
    from vopt.web.ops import check_model

    ok = check_model(_graph("Sigmoid"), "webgpu")
    assert ok["all_supported"] and ok["nodes"] == 2
    falls = check_model(_graph("Mod"), "webgpu")  # not in the WebGPU EP's table: runs on wasm/CPU
    assert falls["fallback_ops"] == {"Mod": 1} and falls["fallback_nodes"] == 1 and not falls["all_supported"]


@pytest.mark.parametrize("name", ["vit-webgpu", "resnet-webnn"])
def test_web_recipes_plan(cli, name):
    result = cli("plan", REPO / "recipes" / f"{name}.yaml", "--json")
    assert result.exit_code == 0, result.output
    import json

    plan = json.loads(result.stdout)
    stages = [s["stage"] for s in plan["steps"]]
    # resnet's family fragment folds conv+bn (fuse) before the export.
    assert stages == ["load", *(["fuse"] if name == "resnet-webnn" else []), "export", "compile", "validate"]
    assert plan["recipe"]["validate"]["runtime"] == "browser"
    export = plan["steps"][stages.index("export")]["config"]
    assert export["dynamic_batch"] is (name == "vit-webgpu")  # webnn exports static shapes


def test_web_recipe_rejects_a_precision_the_target_cannot_make(cli, write_recipe):
    from tests.conftest import tiny_model

    recipe = write_recipe(
        {"name": "x", "model": tiny_model("resnet"), "compile": {"target": "webnn", "precision": "int8"}}
    )
    result = cli("check", recipe)
    assert result.exit_code == 2
    assert "compile.precision" in result.output


@pytest.mark.parametrize(
    ("patch", "needle"),
    [("chromium", "apt-get install chromium"), ("npm", "npm ci"), ("node", "apt-get install nodejs")],
)
def test_web_missing_browser_is_one_line_and_exit_4(cli, monkeypatch, tmp_path, patch, needle):
    from vopt.runtimes import browser

    if patch == "chromium":
        monkeypatch.setattr(browser, "CHROMIUM", str(tmp_path / "no-chromium"))
    elif patch == "npm":
        monkeypatch.setattr(browser, "WEB_DIR", tmp_path)
    else:
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setattr(browser, "CHROMIUM", __file__)  # present, so the node check is the one that fires
    model = tmp_path / "m.onnx"
    model.write_bytes(b"")
    result = cli("verify", model, "--browser")
    assert result.exit_code == 4, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0]


def test_web_verify_needs_a_runtime(cli, tmp_path):
    result = cli("verify", tmp_path / "m.onnx")
    assert result.exit_code == 2 and "--browser" in result.output


def test_browser_validation_is_keyed_by_the_browser_and_onnxruntime_web():
    from vopt.recipe.sections.validate import ValidateSection
    from vopt.stages.validate import ValidateConfig, ValidateStage

    browser = ValidateStage.fingerprint(
        ValidateConfig(section=ValidateSection(runtime="browser"), compile={"target": "cpu"})
    )
    web = ValidateStage.fingerprint(ValidateConfig(section=ValidateSection(), compile={"target": "webgpu"}))
    plain = ValidateStage.fingerprint(ValidateConfig(section=ValidateSection(), compile={"target": "cpu"}))
    assert "browser" in browser and "browser" in web and "browser" not in plain
