"""An artifact of components (docs/adding-a-component.md): two small ONNX models that run as a chain build
as one artifact, each component cached on its own, each validated against its reference on the inputs it
really sees, and the pair validated as a whole; `vopt inspect` and the report show the components."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO

SAMPLES = str(REPO / "vopt" / "data" / "samples")


def _export(module, example, path: Path, in_name: str, out_name: str) -> None:
    import torch

    torch.onnx.export(
        module.eval(), (example,), str(path), input_names=[in_name], output_names=[out_name],
        opset_version=17, dynamo=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def pair(tmp_path_factory) -> tuple[Path, Path]:
    """An encoder (conv features) and a decoder (a classifier head on them), random but sane weights."""
    import torch

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("pair")
    encoder = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 16, 3, stride=2, padding=1), torch.nn.ReLU(),
    )  # fmt: skip
    decoder = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(32, 10),
    )  # fmt: skip
    x = torch.randn(1, 3, 64, 64)
    _export(encoder, x, root / "enc.onnx", "pixel_values", "features")
    _export(decoder, encoder(x), root / "dec.onnx", "features", "logits")
    return root / "enc.onnx", root / "dec.onnx"


DOC = REPO / "docs" / "adding-a-component.md"


def _doc_block(lang: str, first_line: str) -> str:
    for body in re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), re.S):
        if body.startswith(first_line):
            return body
    raise AssertionError(f"docs/adding-a-component.md has no {lang} block starting {first_line!r}")


def _recipe(tmp_path: Path, pair: tuple[Path, Path], decoder_samples: int | None = None) -> Path:
    """The doc's recipe as it stands, with this test's files."""
    data = yaml.safe_load(_doc_block("yaml", "# pair.yaml"))
    data["model"]["components"]["encoder"]["path"] = str(pair[0])
    data["model"]["components"]["decoder"]["path"] = str(pair[1])
    data["quantize"]["calibration"]["data"] = data["validate"]["data"] = SAMPLES
    if decoder_samples is not None:  # a change to the encoder's quantization only
        data["components"]["encoder"] = {"quantize": {"calibration": {"samples": decoder_samples}}}
    path = tmp_path / "pair.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))  # components run in the order they are written
    return path


@pytest.mark.slow
def test_two_components_build_cache_validate_and_show(pair, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    res = cli("build", _recipe(tmp_path, pair), "--out", out, "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    art = m["artifact"]
    assert art["format"] == "components" and list(art["components"]) == ["encoder", "decoder"]
    assert art["components"]["encoder"]["meta"]["precision"] == "int8"
    assert art["components"]["decoder"]["meta"]["precision"] == "fp32"
    for name in ("encoder", "decoder"):
        comp = art["components"][name]
        shipped = out / "pair" / comp["file"]
        assert shipped.is_file() and comp["file"].startswith(f"{name}/"), comp["file"]
    index = json.loads((out / "pair" / "components.json").read_text())
    assert set(index["components"]) == {"encoder", "decoder"}

    steps = {s["stage"]: s for s in m["steps"]}
    q = steps["quantize"]["key_material"]["components"]
    assert q["decoder"] == {"skipped": True, "sha256": q["decoder"]["sha256"]}  # quantize: null for it
    assert not q["encoder"]["cached"]
    v = m["validation"]
    assert v["status"] == "ok" and set(v["components"]) == {"encoder", "decoder"}
    # the float decoder, compiled for ORT, matches its source on the features the float encoder gave it
    assert v["components"]["decoder"]["worst_cosine"] > 0.9999
    assert 0.9 < v["components"]["encoder"]["worst_cosine"] < 0.99999  # int8: close, not equal
    assert v["first_drift"]["component"] == "encoder"
    assert v["metrics"]["logits"]["cosine"] > 0.9 and all(g["passed"] for g in v["gates"])

    # The same build with only the encoder's quantization changed: the decoder's steps are all cache hits.
    res = cli("build", _recipe(tmp_path, pair, decoder_samples=6), "--out", out, "--json")
    assert res.exit_code == 0, res.output
    m2 = json.loads(res.stdout)
    steps2 = {s["stage"]: s["key_material"] for s in m2["steps"] if s["stage"] in ("quantize", "compile")}
    assert not steps2["quantize"]["components"]["encoder"]["cached"]
    assert not steps2["compile"]["components"]["encoder"]["cached"]
    assert steps2["compile"]["components"]["decoder"]["cached"]

    shown = cli("inspect", out / "pair", "--json")
    assert shown.exit_code == 0, shown.output
    info = json.loads(shown.stdout)
    assert info["format"] == "components" and set(info["components"]) == {"encoder", "decoder"}
    assert info["components"]["encoder"]["quantization"]["scheme"] == "QDQ"
    report = (out / "pair" / "report.md").read_text()
    assert "## Components" in report and "first component to drift" in report.lower()


def test_a_component_section_for_no_such_component_is_a_recipe_error(pair, cli, tmp_path, monkeypatch):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(tmp_path / "cache"))
    recipe = _recipe(tmp_path, pair)
    data = yaml.safe_load(recipe.read_text())
    data["components"]["decodr"] = data["components"].pop("decoder")
    recipe.write_text(yaml.safe_dump(data, sort_keys=False))
    res = cli("build", recipe, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "components.decodr" in res.output and "encoder, decoder" in res.output
    assert not (tmp_path / "out" / "pair").exists()


def test_chain_runs_components_in_order():
    from vopt.models.families.base import run_chain

    class Call:
        def __init__(self, inp: str, out: str, fn):
            self.inputs, self.outputs, self.fn = [inp], [out], fn

        def __call__(self, feeds):
            return {self.outputs[0]: self.fn(feeds[self.inputs[0]])}

    calls = {"a": Call("x", "y", lambda v: v + 1), "b": Call("y", "z", lambda v: v * 2)}
    out, seen = run_chain(calls, np.ones(3))
    assert out["z"].tolist() == [4.0, 4.0, 4.0]
    assert seen["b"][0]["y"].tolist() == [2.0, 2.0, 2.0]


def test_the_docs_pipeline_family_runs_its_components():
    from vopt.models.families.base import Family

    namespace: dict = {}
    exec(_doc_block("python", "from vopt.models.families.base import"), namespace)
    family = namespace["MyPipeline"]()
    assert isinstance(family, Family)

    class Call:
        def __init__(self, inp: str, out: str, fn):
            self.inputs, self.outputs, self.fn = [inp], [out], fn

        def __call__(self, feeds):
            return {self.outputs[0]: self.fn(feeds[self.inputs[0]])}

    calls = {"backbone": Call("x", "f", lambda v: v * 3), "head": Call("f", "y", lambda v: v - 1)}
    out, seen = family.run_components(calls, np.ones(2))
    assert out["y"].tolist() == [2.0, 2.0] and seen["head"][0]["f"].tolist() == [3.0, 3.0]
