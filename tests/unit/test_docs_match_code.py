"""Docs and command output that match the code: no recipe count that depends on the machine, `vopt estimate`
counting weights kept in Constant nodes, and `vopt recipes` explaining `proxy` and naming each platform one
way."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import onnx
import pytest

from tests.conftest import REPO
from tests.unit.test_cli_tables import run


def test_readme_and_docs_state_no_count_of_the_recipes_built_here():
    """What `make smoke` builds depends on the machine (`vopt recipes --buildable`): a number in the docs
    drifts (the README said 30 while the list had 32)."""
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = " ".join(path.read_text().split())
        stated = re.findall(r"(?:builds|build|runs) (?:the |all )?\d+ (?:buildable )?recipes", text)
        assert not stated, (path.name, stated)
    readme = " ".join((REPO / "README.md").read_text().split())
    smoke = readme[readme.index("`make smoke` builds") :][:400]
    assert "`vopt recipes --buildable`" in smoke and not re.search(r"builds (the )?\d", smoke)


def _paddle_model() -> Path | None:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")  # imports cv2: locate it without importing
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx"
    return path if path.is_file() else None


@pytest.mark.skipif(
    _paddle_model() is None,
    reason="rapidocr-onnxruntime (PP-OCR's ONNX files) is not installed: "
    "pip install --no-deps rapidocr-onnxruntime==1.4.4",
)
def test_estimate_counts_weights_that_an_onnx_file_keeps_in_constant_nodes(write_recipe, tmp_path):
    """PaddlePaddle's converter keeps every weight in a Constant node (no initializers): the estimate said 0
    parameters. The same graph with the Constants turned into initializers gives the same count."""
    source = onnx.load(str(_paddle_model()))
    assert not source.graph.initializer and any(n.op_type == "Constant" for n in source.graph.node)
    twin = onnx.ModelProto()
    twin.CopyFrom(source)
    constants = [n for n in twin.graph.node if n.op_type == "Constant"]
    for node in constants:
        tensor = next(a.t for a in node.attribute if a.name == "value")
        tensor.name = node.output[0]
        twin.graph.initializer.append(tensor)
        twin.graph.node.remove(node)
    onnx.save(twin, str(tmp_path / "twin.onnx"))

    def estimate(path: Path) -> dict:
        model = {"source": "onnx", "path": str(path), "input": {"shape": [1, 3, 48, 192], "name": "x"}}
        recipe = write_recipe({"name": "paddle-cls", "model": model}, f"{path.stem}.yaml")
        result = run("estimate", recipe, "-b", "1", "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    with_constants, with_initializers = estimate(_paddle_model()), estimate(tmp_path / "twin.onnx")
    assert with_initializers["params"] > 100_000
    for key in ("params", "layers", "per_image_activation_bytes"):
        assert with_constants[key] == with_initializers[key], key
    assert with_constants["rows"][0]["param_bytes"] == with_initializers["rows"][0]["param_bytes"]
    assert with_constants["layers"] == len(source.graph.node) - len(constants)


def test_recipes_explains_proxy_and_names_each_platform_one_way(monkeypatch):
    monkeypatch.chdir(REPO)
    rows = [r for r in json.loads(run("recipes", "--json").stdout) if r["ok"]]
    platforms: dict[str, set[str]] = {}
    for r in rows:
        platforms.setdefault(r["target"], set()).add(r["platform"])
    assert platforms["qnn"] == {"qualcomm"}, platforms  # efficientnet-lite0-qnn said `qnn`
    assert all(len(p) == 1 for p in platforms.values()), platforms
    assert not {r["platform"] for r in rows} & {"qnn", "coreml", "tensorrt"}  # target names, not platforms
    text = run("recipes").stdout
    assert "'proxy' = it runs here on a stand-in for the device" in text
    for r in rows:
        if r["runtime"] == "proxy":
            assert f"    {r['target']}: {r['reason']}" in text.splitlines(), r["target"]
    assert "qualcomm -> qnn" in text


def test_docs_recipes_page_names_platforms_as_vopt_recipes_does():
    from vopt.cli.recipes_doc import render

    page = render()
    assert "| efficientnet | qualcomm | qnn |" in page and "| efficientnet | qnn | qnn |" not in page
