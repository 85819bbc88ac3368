"""When OpenVINO refuses a graph, the error names the nodes and their op types, and its advice works.

The model is a real ONNX file with an op ONNX Runtime runs and OpenVINO has no conversion rule for
(com.microsoft.Inverse). The bisection route (a message that names nothing) is covered for QNN in
test_qnn_diagnose.py and, on a model-level refusal, below."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

pytest.importorskip("openvino")

SHAPE = [1, 3, 8, 8]


def _inverse_model(path, *, ir_version: int | None = None):
    """Conv -> Add(32 I) -> com.microsoft.Inverse (twice) -> GlobalAveragePool -> Flatten: [1, 3] logits. The
    added 32 I makes every 8 x 8 matrix diagonally dominant (normalized pixels stay within +-3.5 after the
    conv), so it is invertible on any image and the outputs are finite."""
    rng = np.random.default_rng(0)
    near_identity = np.eye(3)[:, :, None, None] + 0.1 * rng.standard_normal((3, 3, 1, 1))
    weight = numpy_helper.from_array(near_identity.astype(np.float32), "stem.weight")
    diagonal = numpy_helper.from_array((32 * np.eye(SHAPE[-1])).astype(np.float32), "stem.diagonal")
    nodes = [
        helper.make_node("Conv", ["pixel_values", "stem.weight"], ["c"], name="/stem/Conv"),
        helper.make_node("Add", ["c", "stem.diagonal"], ["r"], name="/stem/Add"),
        helper.make_node("Inverse", ["r"], ["i0"], name="/blocks.0/inv/Inverse", domain="com.microsoft"),
        helper.make_node("Inverse", ["i0"], ["i1"], name="/blocks.1/inv/Inverse", domain="com.microsoft"),
        helper.make_node("GlobalAveragePool", ["i1"], ["p"], name="/head/Pool"),
        helper.make_node("Flatten", ["p"], ["logits"], name="/head/Flatten"),
    ]
    graph = helper.make_graph(
        nodes,
        "inverse",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, SHAPE)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 3])],
        initializer=[weight, diagonal],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    model.ir_version = ir_version or 8
    onnx.save(model, str(path))
    return path


def _recipe(write_recipe, model_path, target):
    return write_recipe(
        {
            "name": f"inverse-{target}",
            "model": {"source": "onnx", "path": str(model_path), "input": {"shape": SHAPE}},
            "compile": {"target": target},
            "validate": {"samples": 2, "default_gates": False},
        }
    )


def test_openvino_conversion_failure_names_the_nodes_and_the_cpu_target_builds(cli, write_recipe, tmp_path):
    model = _inverse_model(tmp_path / "inverse.onnx")
    result = cli("build", _recipe(write_recipe, model, "openvino"), "--out", tmp_path / "out")
    assert result.exit_code == 1, result.output
    out = result.output
    assert "[compile] OpenVINO rejected the graph: No conversion rule found for operations: " in out
    assert "com.microsoft.Inverse" in out
    # both nodes, by name and op type, and the glob that covers the same construct in every block
    assert "2 node(s) cause it: /blocks.0/inv/Inverse (com.microsoft.Inverse), " in out
    assert "/blocks.1/inv/Inverse (com.microsoft.Inverse)" in out
    assert "/blocks.*/inv/* (2 nodes)" in out
    assert "build this model for the `cpu` target" in out
    assert "Traceback" not in out and "unconverted_ops_report.cpp" not in out
    # the advice holds: ONNX Runtime runs the same file
    result = cli("build", _recipe(write_recipe, model, "cpu"), "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output


def test_bisection_reports_a_model_level_refusal_without_blaming_a_node(tmp_path):
    """A runtime that refuses every sub-graph (here: any IR version above 8) refuses the model, not a node."""
    from vopt.runtimes.diagnose import bisect_failure, rejected_graph_error

    model = _inverse_model(tmp_path / "ir9.onnx", ir_version=9)

    def loads(path):
        version = onnx.load(str(path)).ir_version
        if version > 8:
            raise RuntimeError(f"Unsupported model IR version: {version}, max supported IR version: 8")

    found = bisect_failure(model, loads, workdir=tmp_path)
    assert found is not None and found.nodes == []
    error = rejected_graph_error("toy runtime", model, RuntimeError("Unsupported model IR version: 9"), loads)
    assert "refuses the model before any node is placed" in "\n".join(error.lines)


def test_named_in_error_reads_converter_lists_and_quoted_node_names(tmp_path):
    from vopt.runtimes.diagnose import named_in_error

    model = _inverse_model(tmp_path / "m.onnx")
    ov_text = "Summary:\n-- No conversion rule found for operations: Bernoulli-17, com.microsoft.Inverse\n"
    assert [t for _, t in named_in_error(ov_text, model)] == ["com.microsoft.Inverse"] * 2
    ort_text = "Non-zero status code returned while running Add node. Name:'/stem/Add' Status Message: x"
    assert named_in_error(ort_text, model) == [("/stem/Add", "Add")]
    assert named_in_error("QNN_COMMON_ERROR_MEM_ALLOC", model) == []
