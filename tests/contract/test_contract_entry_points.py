"""Plugins from outside vopt take the path vopt's own take: a separate package, installed with pip, declares a
toy target, a toy quantization scheme, a toy family and a toy artifact format as entry points, and a recipe
that uses all four builds end to end with no edit to vopt (its registry finds them through
`importlib.metadata`). The format and the target are docs/adding-a-format.md's code blocks as they stand."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PYPROJECT = textwrap.dedent("""
    [build-system]
    requires = ["setuptools>=77"]
    build-backend = "setuptools.build_meta"

    [project]
    name = "vopt-toy-plugins"
    version = "0.1.0"

    [project.entry-points."vopt.targets"]
    toy-bundle = "vopt_toy.target:ToyBundleTarget"

    [project.entry-points."vopt.formats"]
    toy-bundle = "vopt_toy.bundle:ToyBundleFormat"

    [project.entry-points."vopt.schemes"]
    ort-dynamic = "vopt_toy.scheme:DynamicInt8Scheme"

    [project.entry-points."vopt.families"]
    regnet = "vopt_toy.family:RegNet"

    [tool.setuptools]
    packages = ["vopt_toy"]
""")

DOC = REPO / "docs" / "adding-a-format.md"


def doc_blocks() -> dict[str, str]:
    """The doc's code blocks, by the file their first line names: the doc is the test's code."""
    blocks = {}
    for body in re.findall(r"```(?:python|toml)\n(.*?)```", DOC.read_text(), re.S):
        first, _, rest = body.partition("\n")
        blocks[first.lstrip("# ").strip()] = rest
    return blocks


SCHEME = textwrap.dedent('''
    """ort-dynamic: onnxruntime's dynamic int8 quantization (nothing to calibrate)."""

    from __future__ import annotations

    from vopt.quant.schemes.base import QuantTypes, Scheme, quiet_logs


    class DynamicInt8Scheme(Scheme):
        name = "ort-dynamic"
        precisions = ("int8",)
        types = {"int8": QuantTypes(activation="uint8", weight="int8", per_channel=False)}
        calibrates = False

        def quantize(self, model, exclude_nodes, out):
            from onnxruntime.quantization import QuantType, quantize_dynamic

            with quiet_logs():
                quantize_dynamic(str(model), str(out), op_types_to_quantize=["Conv"],
                                 weight_type=QuantType.QUInt8, nodes_to_exclude=exclude_nodes)
            return out
''')

FAMILY = textwrap.dedent('''
    """regnet: transformers' RegNetForImageClassification."""

    from vopt.models.families.base import HALF, Family


    class RegNet(Family):
        name = "regnet"
        model_types = ("regnet",)
        mean = HALF
        std = HALF
        tiny_config = {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "groups_width": 8,
                       "num_labels": 10}
''')


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The toy package, installed by pip into its own folder (a site directory put on PYTHONPATH)."""
    root = tmp_path_factory.mktemp("toy-plugins")
    pkg = root / "src"
    (pkg / "vopt_toy").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    doc = doc_blocks()
    assert doc["pyproject.toml"].strip() in PYPROJECT, "the doc's entry points are the package's"
    files = {"bundle": doc["vopt_toy/bundle.py"], "target": doc["vopt_toy/target.py"], "scheme": SCHEME}
    for name, text in {**files, "family": FAMILY}.items():
        (pkg / "vopt_toy" / f"{name}.py").write_text(text)
    (pkg / "vopt_toy" / "__init__.py").write_text("")
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
         str(site), str(pkg)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert any(site.glob("vopt_toy_plugins-*.dist-info/entry_points.txt"))
    return site


def _vopt(site: Path, *args: object, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(site), "VOPT_CACHE_DIR": str(cache)}
    return subprocess.run(
        [sys.executable, "-m", "vopt", *map(str, args)],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )  # fmt: skip


def test_outside_plugins_are_listed_beside_vopts_own(installed, tmp_path):
    code = (
        "from vopt import registry as r; import json; print(json.dumps({k: list(getattr(r, k)) for k in "
        "('TARGETS', 'FORMATS', 'SCHEMES', 'FAMILIES')}))"
    )
    env = {**os.environ, "PYTHONPATH": str(installed)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    tables = json.loads(out.stdout)
    assert tables["TARGETS"][-1] == "toy-bundle" and "cpu" in tables["TARGETS"]  # built-ins first
    assert "toy-bundle" in tables["FORMATS"] and "onnx" in tables["FORMATS"]
    assert "ort-dynamic" in tables["SCHEMES"] and "regnet" in tables["FAMILIES"]


@pytest.mark.slow
def test_a_toy_target_scheme_family_and_format_build_end_to_end(installed, tmp_path):
    import onnx

    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                "model": {  # no `family:`: the config's model_type finds the outside family
                    "source": "hf",
                    "id": "tiny-regnet",
                    "weights": "random",
                    "config": {
                        "model_type": "regnet",
                        "embedding_size": 16,
                        "hidden_sizes": [16, 32],
                        "depths": [1, 1],
                        "groups_width": 8,
                        "num_labels": 10,
                    },
                    "input": {"shape": [1, 3, 64, 64]},
                },
                "quantize": {"precision": "int8", "scheme": "ort-dynamic", "check": {"samples": 4}},
                "compile": {"target": "toy-bundle", "vendor": "acme"},
                "validate": {"samples": 4, "gates": {"cosine": ">=0.9"}},
            }
        )
    )
    cache = tmp_path / "cache"
    build = _vopt(installed, "build", recipe, "--out", tmp_path / "out", "--json", cache=cache)
    assert build.returncode == 0, build.stderr
    manifest = json.loads(build.stdout)
    steps = {s["stage"]: s["report"] for s in manifest["steps"]}
    assert "regnet" in steps["load"]["summary"]  # the outside family, not the generic path
    assert manifest["artifact"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]
    assert steps["quantize"]["scheme"] == "ort-dynamic" and "calibration" not in steps["quantize"]
    assert (
        manifest["artifact"]["format"] == "toy-bundle" and steps["compile"]["summary"] == "bundled for acme"
    )
    bundle = tmp_path / "out" / "toy" / "model.bundle"
    ops = {n.op_type for n in onnx.load(str(bundle / "model.onnx")).graph.node}
    assert "ConvInteger" in ops, ops  # really quantized by the outside scheme
    assert manifest["validation"]["runtime"] == "toy-bundle-ort"  # run through the outside format's runtime
    assert manifest["validation"]["metrics"]["logits"]["cosine"] > 0.9
    shown = _vopt(installed, "inspect", tmp_path / "out" / "toy", "--json", cache=cache)
    assert shown.returncode == 0, shown.stderr
    info = json.loads(shown.stdout)
    assert info["format"] == "toy-bundle" and info["detail"] == "bundle acme"
