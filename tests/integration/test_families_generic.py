"""Models with no family module go through the generic path by task, with no code change; and the
family registry itself is complete (tiny configs, recipes, HF model types)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vopt.models.families import all_families, get_family

REPO = Path(__file__).resolve().parents[2]


def _reports(result):
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    return manifest, {s["stage"]: s["report"] for s in manifest["steps"]}


def test_families_generic_mobilevit_from_a_local_directory(cli, write_recipe, tmp_path):
    """A MobileViT saved with save_pretrained (weights + preprocessor_config.json): what a user downloads."""
    from transformers import MobileViTConfig, MobileViTForImageClassification

    from vopt.models.init import sane_random_init

    config = MobileViTConfig(
        image_size=64,
        hidden_sizes=[16, 24, 32],
        neck_hidden_sizes=[8, 8, 16, 16, 24, 24, 64],
        num_attention_heads=2,
        num_labels=3,
        id2label={0: "cat", 1: "dog", 2: "car"},
        label2id={"cat": 0, "dog": 1, "car": 2},
    )
    config.architectures = ["MobileViTForImageClassification"]
    model = sane_random_init(MobileViTForImageClassification(config).eval(), [1, 3, 64, 64])
    model.save_pretrained(tmp_path / "mobilevit")
    (tmp_path / "mobilevit" / "preprocessor_config.json").write_text(
        json.dumps(
            {
                "do_rescale": True,
                "do_flip_channel_order": True,
                "crop_size": {"height": 64, "width": 64},
                "size": {"shortest_edge": 72},
            }
        )
    )
    recipe = write_recipe(
        {
            "name": "mobilevit",
            "validate": None,
            "fuse": {},
            "model": {"source": "hf", "id": str(tmp_path / "mobilevit"), "input": {"shape": [1, 3, 64, 64]}},
        }
    )
    manifest, reports = _reports(cli("build", recipe, "--out", tmp_path / "out", "--json"))
    assert reports["load"]["family"] == "generic" and reports["load"]["task"] == "image-classification"
    assert manifest["artifact"]["meta"]["labels"] == ["cat", "dog", "car"]
    assert manifest["artifact"]["preprocess"]["channel_order"] == "BGR"  # from preprocessor_config.json
    assert manifest["artifact"]["preprocess"]["mean"] == [0.0, 0.0, 0.0]
    assert reports["fuse"]["conv_bn_fused"] > 10
    logits = reports["export"]["parity"]["outputs"]["logits"]
    assert logits["cosine"] >= 0.9999 and logits["input_variation"] > 0.02


def test_families_generic_beit_by_model_type_offline(cli, write_recipe, tmp_path):
    """No download, no family: `config.model_type` names the architecture, the task picks the head."""
    recipe = write_recipe(
        {
            "name": "beit",
            "validate": None,
            "model": {
                "source": "hf",
                "id": "microsoft/beit-base-patch16-224",
                "weights": "random",
                "task": "image-classification",
                "config": {
                    "model_type": "beit",
                    "hidden_size": 32,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                    "intermediate_size": 64,
                    "image_size": 64,
                    "patch_size": 16,
                    "num_labels": 10,
                },
                "input": {"shape": [1, 3, 64, 64]},
            },
        }
    )
    _, reports = _reports(cli("build", recipe, "--out", tmp_path / "out", "--json"))
    assert reports["load"]["family"] == "generic"
    logits = reports["export"]["parity"]["outputs"]["logits"]
    assert logits["cosine"] >= 0.9999 and logits["input_variation"] > 0.02


@pytest.mark.parametrize("family", sorted(all_families()))
def test_families_registry_entry_is_complete(family, tmp_path):
    from transformers import CONFIG_MAPPING

    from vopt.models.families.stable_diffusion import COMPONENT_FAMILIES
    from vopt.recipe.resolve import load_recipe

    fam = get_family(family)
    assert fam.tiny_config, f"{family}: no tiny_config, so no tiny-model test"
    assert len(fam.mean) == len(fam.std) == 3 and fam.atol > 0 and 0.99 < fam.min_cosine <= 1
    assert fam.task in (
        "image-classification",
        "object-detection",
        "semantic-segmentation",
        "feature-extraction",
        "text-to-image",
    )
    if fam.config_library == "transformers":  # Ultralytics' and diffusers' configs are not transformers'
        assert fam.model_types and fam.model_types[0] in CONFIG_MAPPING, fam.model_types
    if family in COMPONENT_FAMILIES.values():  # built as part of its pipeline, whose fragment it has
        return
    fragment = REPO / "recipes" / "families" / f"{family}.yaml"
    assert fragment.is_file(), f"recipes/families/{family}.yaml missing"
    composed = tmp_path / "r.yaml"
    composed.write_text(f"extends: [{fragment}]\nname: {family}-check\n")
    recipe = load_recipe(composed).recipe
    assert recipe.model.family == family and recipe.model.task in (None, fam.task)  # None: the family's


def test_families_hf_offline_without_local_copy_names_the_id(cli, write_recipe, tmp_path):
    recipe = write_recipe(
        {
            "name": "offline",
            "validate": None,
            "model": {"source": "hf", "id": "nobody/no-such-model", "weights": "pretrained"},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 4
    assert "nobody/no-such-model" in result.output and "local directory" in result.output
    assert "Traceback" not in result.output


def test_families_hf_checkpoint_that_does_not_match(cli, write_recipe, tmp_path):
    import torch
    from transformers import AutoModelForImageClassification, ResNetConfig

    other = AutoModelForImageClassification.from_config(
        ResNetConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], embedding_size=8, num_labels=10)
    )
    torch.save(other.state_dict(), tmp_path / "other.pt")
    from tests.conftest import tiny_model

    recipe = write_recipe(
        {
            "name": "mismatch",
            "validate": None,
            "model": {**tiny_model("resnet"), "weights": str(tmp_path / "other.pt")},
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 1
    assert "does not match the model" in result.output and "Traceback" not in result.output


def test_families_family_model_with_another_task_uses_that_tasks_outputs(cli, write_recipe, tmp_path):
    from tests.conftest import tiny_model

    recipe = write_recipe(
        {
            "name": "vit-features",
            "validate": None,
            "model": {**tiny_model("vit"), "task": "feature-extraction"},
        }
    )
    manifest, reports = _reports(cli("build", recipe, "--out", tmp_path / "out", "--json"))
    assert set(reports["export"]["parity"]["outputs"]) == {"last_hidden_state"}
    assert manifest["artifact"]["preprocess"]["mean"] == [0.5, 0.5, 0.5]  # still ViT's contract
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999


def test_families_deit_gets_imagenet_normalisation(cli, write_recipe, tmp_path):
    recipe = write_recipe(
        {
            "name": "deit",
            "validate": None,
            "model": {
                "source": "hf",
                "id": "facebook/deit-tiny-patch16-224",
                "family": "vit",
                "weights": "random",
                "config": {
                    "model_type": "deit",
                    "hidden_size": 32,
                    "num_hidden_layers": 1,
                    "num_attention_heads": 2,
                    "intermediate_size": 64,
                    "image_size": 64,
                    "patch_size": 16,
                    "num_labels": 10,
                },
                "input": {"shape": [1, 3, 64, 64]},
            },
        }
    )
    manifest, reports = _reports(cli("build", recipe, "--out", tmp_path / "out", "--json"))
    assert manifest["artifact"]["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
