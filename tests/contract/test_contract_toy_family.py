"""Adding a family is one module and one registry line (docs/families.md, "Adding a family"): a toy
RegNet family from a module outside vopt, added to registry.FAMILIES, is found by its transformers
model_type, and its facts (preprocessing, tiny config) reach the build. In a child process, so the registry
is edited before vopt loads its families, as for a family shipped in vopt."""

from __future__ import annotations

import json
import textwrap

import yaml

from tests.contract.plugin_driver import vopt_with

TOY = textwrap.dedent('''
    """regnet: transformers' RegNetForImageClassification (a CNN the generic path would otherwise take)."""

    from vopt.models.families.base import HALF, Family


    class RegNet(Family):
        name = "regnet"
        model_types = ("regnet",)
        task = "image-classification"
        mean = HALF
        std = HALF
        resize = 256
        prune_ignore = ("classifier*",)
        tiny_config = {"embedding_size": 16, "hidden_sizes": [16, 32], "depths": [1, 1], "groups_width": 8,
                       "num_labels": 10}
''')

REGISTRY_LINE = 'registry.FAMILIES["regnet"] = "toy_family:RegNet"'


def test_a_toy_family_plugin_is_found_by_model_type_and_builds(tmp_path):
    (tmp_path / "toy_family.py").write_text(TOY)
    tiny = {
        "embedding_size": 16,
        "hidden_sizes": [16, 32],
        "depths": [1, 1],
        "groups_width": 8,
        "num_labels": 10,
    }
    recipe = tmp_path / "toy.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "toy",
                # no `family:`: the config's model_type finds the new family
                "model": {
                    "source": "hf",
                    "id": "tiny-regnet",
                    "weights": "random",
                    "config": {"model_type": "regnet", **tiny},
                    "input": {"shape": [1, 3, 64, 64]},
                },
                "validate": {"samples": 4},
            }
        )
    )
    build = vopt_with(tmp_path, REGISTRY_LINE, "build", recipe, "--out", tmp_path / "out", "--json")
    assert build.returncode == 0, build.stderr
    manifest = json.loads(build.stdout)
    load = next(s for s in manifest["steps"] if s["stage"] == "load")["report"]
    assert "regnet" in load["summary"], load["summary"]  # the toy family, not the generic path
    assert manifest["artifact"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]  # its facts reach the artifact
    assert manifest["validation"]["metrics"]["logits"]["cosine"] > 0.9999
