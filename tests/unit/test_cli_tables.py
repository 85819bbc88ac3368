"""Every command that prints a table, run as in a CI log (stdout not a terminal, COLUMNS=80): every identifier
its --json gives appears whole, and each record stays on one line."""

from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import REPO, tiny_model

LONG_IN = "pixel_values_of_the_camera_frame_in_nchw_layout"
LONG_OUT = "class_logits_of_the_classifier_head_before_softmax"


def run(*args: object, columns: int = 80):
    """The CLI in process with stdout piped (CliRunner) and COLUMNS set."""
    from typer.testing import CliRunner

    from vopt.cli.app import make_app

    return CliRunner().invoke(make_app(), [str(a) for a in args], env={"COLUMNS": str(columns)})


def whole(text: str, word: str) -> bool:
    """`word` appears with no identifier character glued on either side (a cut name ends in '…')."""
    return re.search(rf"(?<![\w.\-]){re.escape(word)}(?![\w.\-…])", text) is not None


def line_with(text: str, *words: str) -> str | None:
    """The first output line holding all `words` whole: a record that was not split over lines."""
    return next((ln for ln in text.splitlines() if all(whole(ln, w) for w in words)), None)


def _model(path, *, long_nodes: bool = False):
    """A small image model (Conv, Relu, global pooling, a linear head) with long input/output (and node)
    names."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "conv_w"),
        numpy_helper.from_array(rng.standard_normal((8, 10)).astype(np.float32), "head_w"),
    ]
    names = ["stem", "act", "pool", "flat", "head"]
    if long_nodes:
        names = [f"encoder_block_0_{n}_node_with_a_long_exported_name" for n in names]
    nodes = [
        helper.make_node("Conv", [LONG_IN, "conv_w"], ["c"], name=names[0], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name=names[1]),
        helper.make_node("GlobalAveragePool", ["r"], ["p"], name=names[2]),
        helper.make_node("Flatten", ["p"], ["f"], name=names[3]),
        helper.make_node("MatMul", ["f", "head_w"], [LONG_OUT], name=names[4]),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(LONG_IN, TensorProto.FLOAT, ["batch_of_frames", 3, 32, 32])],
        [helper.make_tensor_value_info(LONG_OUT, TensorProto.FLOAT, ["batch_of_frames", 10])],
        inits,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.save(proto, path)
    return path


def test_recipes_at_80_columns_prints_every_name_whole(monkeypatch):
    monkeypatch.chdir(REPO)
    rows = json.loads(run("recipes", "--json").stdout)
    result = run("recipes")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text
    long_names = [r["name"] for r in rows if r["ok"] and len(r["name"]) > 20]
    assert long_names, "the library has long recipe names (efficientnet-lite0-openvino-search)"
    for r in rows:
        if not r["ok"]:
            assert whole(text, r["file"]), r["file"]
            continue
        line = line_with(text, r["name"], r["family"], r["target"], r["precision"])
        assert line is not None, f"{r['name']}: not whole on one line in\n{text}"
        assert r["runtime"] in line


def test_doctor_at_80_columns_prints_backends_and_reasons_whole():
    data = json.loads(run("doctor", "--json").stdout)
    result = run("doctor")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text
    for b in data["backends"]:
        line = line_with(text, b["module"], b["version"] or "-")
        assert line is not None, f"{b['module']}: not whole on one line in\n{text}"
        assert b["what"] in line
    lines = text.splitlines()
    for t in data["targets"]:
        words = [t["hardware_detail"]] + ([] if t["available"] else [t["reason"]])
        assert any(whole(ln, t["target"]) and all(w in ln for w in words) for ln in lines), (t, text)


def test_inspect_at_80_columns_prints_io_names_whole(tmp_path):
    path = _model(tmp_path / "m.onnx")
    info = json.loads(run("inspect", path, "--json").stdout)
    text = run("inspect", path).stdout
    assert "…" not in text
    for io in info["inputs"] + info["outputs"]:
        line = line_with(text, io["name"], io["dtype"])
        assert line is not None and "batch_of_frames" in line, text


def test_profile_at_80_columns_prints_node_names_whole(tmp_path):
    path = _model(tmp_path / "m.onnx", long_nodes=True)
    shown = json.loads(run("profile", path, "--runs", "3", "--json").stdout)["profile"]
    result = run("profile", path, "--runs", "3")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text
    assert shown["top"], shown
    for op in shown["top"]:
        assert line_with(text, op["node"], op["op_type"]) is not None, f"{op['node']} not whole in\n{text}"
    for row in shown["by_op_type"]:
        assert whole(text, row["op_type"])


@pytest.mark.parametrize("columns", [80, 30])
def test_bench_prints_a_record_per_batch_size_at_any_width(tmp_path, columns):
    path = _model(tmp_path / "m.onnx")
    result = run("bench", path, "-b", "1,3", "-n", "2", "--warmup", "0", "--no-baseline", columns=columns)
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "…" not in text
    for header in ("first ms", "p50 ms", "p99 ms", "img/s"):
        assert header in text
    if columns == 30:  # too narrow for the table: one record per line
        assert line_with(text, "batch: 1") and line_with(text, "batch: 3")


def test_estimate_at_80_columns_prints_recipe_and_sizes_whole(write_recipe):
    from vopt.report.data import fmt_bytes

    name = "estimate-of-a-recipe-with-a-rather-long-descriptive-name"
    recipe = write_recipe({"name": name, "model": tiny_model("resnet"), "compile": {"target": "cpu"}})
    data = json.loads(run("estimate", recipe, "-b", "1,64", "--json").stdout)
    result = run("estimate", recipe, "-b", "1,64")
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert whole(text, name) and "upper bound (all outputs kept)" in text
    for row in data["rows"]:
        sizes = [fmt_bytes(row[k]) for k in ("param_bytes", "activation_bytes", "total_bytes")]
        assert any(all(s in ln for s in sizes) for ln in text.splitlines()), (sizes, text)


def test_print_table_switches_to_records_only_when_the_table_does_not_fit():
    from rich.console import Console

    from vopt.cli.output import print_table

    rows = [
        ["efficientnet-lite0-openvino-search", "efficientnet", "openvino", "int8"],
        ["vit-cuda", "vit", "x", "y"],
    ]
    for width, records in ((120, False), (40, True)):
        console = Console(width=width, file=__import__("io").StringIO(), highlight=False, soft_wrap=True)
        print_table(["recipe", "family", "target", "precision"], rows, console=console)
        text = console.file.getvalue()
        lines = [ln for ln in text.splitlines() if ln.strip()]
        assert len(lines) == (2 if records else 3), text  # records have no header line
        assert (
            lines[0].startswith("recipe: efficientnet-lite0-openvino-search | family: efficientnet")
            == records
        )
        assert whole(text, "efficientnet-lite0-openvino-search")
