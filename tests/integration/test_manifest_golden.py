"""The manifest stays compatible: a build of a shipped recipe still writes every field a manifest of the same
recipe had before the typed results (tests/golden/manifest-resnet-openvino-smoke.json: the field paths of
`vopt build recipes/resnet-openvino.yaml --profile smoke` at a10fcfb, the last commit before them), and an old
manifest (schema 1, no schema_version) still reads."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import REPO

GOLDEN = REPO / "tests" / "golden" / "manifest-resnet-openvino-smoke.json"
# Report keys that come and go with the machine (a busy-machine note), not with the manifest's shape.
VOLATILE = {"warnings"}


def field_paths(m: dict[str, Any]) -> list[str]:
    """The manifest's shape: top-level fields, the recipe's and the artifact's fields, each step's record and
    report fields (steps named by stage), and the validation and benchmark sections' fields."""
    out = [f"{k}" for k in m]
    out += [f"recipe.{k}" for k in m["recipe"]]
    out += [f"artifact.{k}" for k in m["artifact"] or {}]
    out += [f"artifact.io.{k}" for k in (m["artifact"] or {}).get("io", {})]
    out += [f"artifact.preprocess.{k}" for k in (m["artifact"] or {}).get("preprocess", {})]
    for step in m["steps"]:
        out += [f"steps[{step['stage']}].{k}" for k in step]
        out += [f"steps[{step['stage']}].report.{k}" for k in step["report"] if k not in VOLATILE]
    for section in ("validation", "benchmark"):
        out += [f"{section}.{k}" for k in m.get(section) or {} if k not in VOLATILE]
    return sorted(set(out))


@pytest.mark.slow
def test_a_shipped_recipe_manifest_keeps_every_field(cli, tmp_path):
    golden = json.loads(GOLDEN.read_text())
    res = cli(
        "build", REPO / "recipes" / "resnet-openvino.yaml", "--profile", "smoke", "--out", tmp_path, "--json"
    )
    assert res.exit_code == 0, res.output
    now = json.loads(res.stdout)
    missing = sorted(set(golden) - set(field_paths(now)))
    assert not missing, f"fields the manifest lost: {missing}"
    assert now["schema_version"] == 2


def test_a_schema_1_manifest_still_reads(tmp_path):
    from vopt.core.results import load_manifest, read_manifest

    old = {
        "vopt_version": "0.1.0",
        "created": "2026-12-03T16:00:00+00:00",
        "status": "ok",
        "recipe": {"name": "old", "file": None, "files": [], "resolved": {}},
        "target": "cpu",
        "precision": "fp32",
        "steps": [
            {
                "stage": "load",
                "key": "k",
                "cached": False,
                "seconds": 1.0,
                "input_sha256": None,
                "output_sha256": "s",
                "config": {},
                "report": {},
                "output_bytes": 1,
                "key_material": {},
            }
        ],
        "artifact": {"file": "model.onnx", "format": "onnx"},
        "gate_failures": [],
        "warnings": [],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(old))
    assert load_manifest(tmp_path).schema_version == 1
    assert load_manifest(tmp_path).step("load").output_sha256 == "s"
    assert read_manifest(tmp_path)["artifact"]["file"] == "model.onnx"


def test_a_newer_schema_is_refused_with_its_file(tmp_path):
    from vopt.core.results import read_manifest
    from vopt.errors import RecipeError

    (tmp_path / "manifest.json").write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(RecipeError, match="manifest schema 99 is newer"):
        read_manifest(tmp_path)
