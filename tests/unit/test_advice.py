"""Advice that works: how to install the tflite backend (its own venv) and TensorRT (a metapackage whose libs
come from NVIDIA at install time), said the same way by the exit-4 error, `vopt doctor`, `vopt matrix` and
the CI example; and a runtime failure bisected to a few nodes of a flat graph names those nodes."""

from __future__ import annotations

import importlib.util
import json
import re

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import REPO


def _tflite():
    from vopt.registry import get_target

    return get_target("tflite")


def test_tflite_install_commands_build_the_venv_make_test_tflite_builds():
    """The same venv, constraints file and torch pin as the Makefile's tflite environment."""
    commands = _tflite().install_commands
    makefile = (REPO / "Makefile").read_text()
    venv = re.search(r"^TFLITE_VENV := (\S+)", makefile, re.M).group(1)
    assert commands[0] == f"python -m venv {venv}"
    assert _tflite().install_bin == f"{venv}/bin"
    torch_line = re.search(r'-m pip install -q (-c constraints-tflite\.txt "torch==[\d.]+")', makefile).group(
        1
    )
    assert commands[1] == f"{venv}/bin/pip install " + torch_line.replace('"', "")
    assert commands[2] == f"{venv}/bin/pip install -c constraints-tflite.txt -e '.[tflite]'"
    assert (REPO / "constraints-tflite.txt").is_file()


@pytest.mark.skipif(importlib.util.find_spec("litert_torch") is not None, reason="the tflite backend is here")
def test_tflite_exit_4_doctor_and_matrix_give_the_venv_commands(cli, monkeypatch):
    monkeypatch.chdir(REPO)
    hint = _tflite().install_hint()
    assert "vopt[tflite]" in hint and " && ".join(_tflite().install_commands) in hint

    built = cli("build", "recipes/resnet-tflite.yaml", "--out", "/nonexistent-never-written")
    assert built.exit_code == 4 and hint in built.output, built.output
    assert "pip install 'vopt[tflite]'" not in built.output  # what the main environment cannot take

    doctor = json.loads(cli("doctor", "--json").stdout)
    assert {b["install"] for b in doctor["backends"] if b["extra"] == "tflite"} == {hint}
    assert hint in cli("doctor").stdout  # the human table, whole (records when it does not fit)

    jobs = yaml.safe_load(cli("matrix", "recipes/resnet-tflite.yaml", "--format", "gitlab").stdout)
    script = jobs["build:resnet-tflite"]["script"]
    assert script[:3] == list(_tflite().install_commands)
    assert script[3] == 'export PATH="$CI_PROJECT_DIR/.venv-tflite/bin:$PATH"'
    assert not [line for line in script if "constraints.txt" in line.replace("constraints-tflite", "")]
    other = yaml.safe_load(cli("matrix", "recipes/resnet-openvino.yaml", "--format", "gitlab").stdout)
    assert "pip install -c constraints.txt" in other["build:resnet-openvino"]["script"][0]


def test_github_actions_example_installs_tflite_in_its_own_venv():
    workflow = yaml.safe_load((REPO / "examples" / "ci" / "github-actions.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    main = next(s for s in steps if s.get("name") == "Install vopt with the target's extra")
    assert main["if"] == "${{ matrix.extra != 'tflite' }}" and "constraints.txt" in main["run"]
    own = next(s for s in steps if s.get("if") == "${{ matrix.extra == 'tflite' }}")
    lines = own["run"].strip().splitlines()
    assert lines[:3] == list(_tflite().install_commands)
    assert lines[3] == 'echo "$PWD/.venv-tflite/bin" >> "$GITHUB_PATH"'


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_tensorrt_advice_names_the_metapackage_that_downloads_from_nvidia(cli, monkeypatch):
    from vopt.registry import get_target

    ok, why = get_target("tensorrt").available()
    assert not ok
    assert "tensorrt 11.4 metapackage" in why and "tensorrt-cu12-libs" in why
    assert "downloads TensorRT's libraries from NVIDIA while it installs" in why
    assert "NVIDIA's index" not in why and "pypi.nvidia.com" not in why
    monkeypatch.chdir(REPO)
    built = cli("build", "recipes/resnet-cuda.yaml", "--out", "/nonexistent-never-written")
    assert built.exit_code == 4 and why in built.output, built.output


def _flat_model(path):
    """A flat export: every node at the top scope (`/model/<Op>_<i>`), one ReduceL2 -> Div -> Mul construct
    among 18 nodes."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4, 1, 1)).astype(np.float32), "w")
    eps = numpy_helper.from_array(np.array(1e-6, np.float32), "eps")
    nodes, x = [], "pixel_values"
    for i in range(6):
        nodes += [
            helper.make_node("Conv", [x, "w"], [f"c{i}"], name=f"/model/Conv_{i}"),
            helper.make_node("Relu", [f"c{i}"], [f"r{i}"], name=f"/model/Relu_{i}"),
        ]
        x = f"r{i}"
        if i == 3:
            nodes += [
                helper.make_node("ReduceL2", [x], ["n"], name="/model/ReduceL2_0", keepdims=1, axes=[1]),
                helper.make_node("Add", ["n", "eps"], ["ne"], name="/model/Add_0"),
                helper.make_node("Div", [x, "ne"], ["d"], name="/model/Div_0"),
            ]
            x = "d"
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["logits"], name="/model/GlobalAveragePool_0"))
    graph = helper.make_graph(
        nodes,
        "flat",
        [helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, [1, 4, 8, 8])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4, 1, 1])],
        initializer=[w, eps],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_a_failure_bisected_in_a_flat_graph_suggests_excluding_those_nodes_not_the_model(tmp_path):
    """In a flat export a node's scope is the whole model: `/model/*` would keep all 16 nodes in float. The
    advice names the failing nodes themselves, and the exclusion takes only them."""
    from vopt.quant.schemes.base import match_nodes
    from vopt.runtimes.diagnose import rejected_graph_error

    model = _flat_model(tmp_path / "flat.onnx")

    def loads(path):  # a runtime that cannot place a ReduceL2 (QNN HTP's GRN failure, in miniature)
        if any(n.op_type == "ReduceL2" for n in onnx.load(str(path)).graph.node):
            raise RuntimeError("QNN_COMMON_ERROR_MEM_ALLOC: failed to finalize the graph")

    error = rejected_graph_error("QNN HTP", model, RuntimeError("finalize failed"), loads, workdir=tmp_path)
    text = "\n".join(error.lines)
    assert "ReduceL2" in text, text
    exclude = yaml.safe_load(re.search(r"quantize: (\{exclude: .*\}\})", error.hint).group(1))["exclude"]
    names = [n.name for n in onnx.load(str(model)).graph.node]
    kept = match_nodes(names, exclude["nodes"])
    assert "/model/ReduceL2_0" in kept and len(kept) <= 3, (exclude, kept)
    assert "/model/*" not in exclude["nodes"]
