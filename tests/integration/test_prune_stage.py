"""prune: measured params/MACs before and after, and the pruned model still exports with ORT parity."""

from __future__ import annotations

import json

import pytest

from tests.conftest import tiny_model


def _build(cli, write_recipe, tmp_path, model, prune, parity_samples=2):
    recipe = write_recipe(
        {
            "name": "pruned",
            "model": model,
            "prune": prune,
            "export": {"parity_samples": parity_samples},
            "validate": None,
        }
    )
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    return {s["stage"]: s["report"] for s in manifest["steps"]}


@pytest.mark.slow
def test_prune_resnet50_config_half_ratio_cuts_params_3x_and_exports(cli, write_recipe, tmp_path):
    # Full ResNet-50 architecture (transformers' ResNetConfig defaults), random weights, 64 px to keep export
    # quick.
    model = {
        "source": "hf",
        "id": "resnet-50-arch",
        "family": "resnet",
        "weights": "random",
        "config": {"num_labels": 1000},
        "input": {"shape": [1, 3, 64, 64]},
    }
    reports = _build(cli, write_recipe, tmp_path, model, {"ratio": 0.5})
    p = reports["prune"]
    assert p["params_before"] > 25_000_000
    assert p["params_before"] / p["params_after"] >= 3.0, p
    assert p["macs_before"] / p["macs_after"] >= 3.0, p
    assert "classifier.1" in p["ignored_layers"]  # the 1000-way head keeps its size
    assert reports["export"]["parity"]["outputs"]["logits"]["cosine"] >= 0.9999


@pytest.mark.slow
def test_prune_vit_base_config_half_ratio_prunes_heads_and_exports(cli, write_recipe, tmp_path):
    model = {
        "source": "hf",
        "id": "vit-base-arch",
        "family": "vit",
        "weights": "random",
        "config": {"num_labels": 1000},
        "input": {"shape": [1, 3, 224, 224]},
    }
    reports = _build(cli, write_recipe, tmp_path, model, {"ratio": 0.5, "prune_heads": True})
    p = reports["prune"]
    assert p["params_before"] > 85_000_000
    assert p["params_before"] / p["params_after"] >= 3.0, p
    assert p["attention_heads_before"] == 144 and p["attention_heads_after"] == 72
    assert reports["export"]["parity"]["outputs"]["logits"]["cosine"] >= 0.9999


def test_prune_tiny_vit_head_dims_instead_of_heads(cli, write_recipe, tmp_path):
    reports = _build(cli, write_recipe, tmp_path, tiny_model("vit"), {"ratio": 0.5, "prune_heads": False})
    p = reports["prune"]
    assert p["attention_heads_after"] == p["attention_heads_before"] == 8
    assert p["params_after"] < p["params_before"]
    assert reports["export"]["parity"]["outputs"]["logits"]["cosine"] >= 0.9999


def test_prune_ignore_glob_keeps_a_layer(cli, write_recipe, tmp_path):
    reports = _build(
        cli, write_recipe, tmp_path, tiny_model("resnet"), {"ratio": 0.5, "ignore": ["resnet.embedder*"]}
    )
    assert "resnet.embedder.embedder.convolution" in reports["prune"]["ignored_layers"]
    assert reports["prune"]["params_after"] < reports["prune"]["params_before"]


def test_prune_unstructured_reports_no_speedup(cli, write_recipe, tmp_path):
    reports = _build(
        cli, write_recipe, tmp_path, tiny_model("resnet"), {"method": "unstructured", "ratio": 0.5}
    )
    p = reports["prune"]
    assert 0.45 <= p["sparsity"] <= 0.55
    assert p["params_after"] == p["params_before"]
    assert "no speedup" in p["note"].lower()
    assert any("no speedup" in w.lower() for w in p["warnings"])


def test_prune_falls_back_to_mlp_widths_where_full_pruning_breaks(cli, write_recipe, tmp_path):
    # Swin's residual width is tied to its relative-position tables: full pruning breaks it, MLP-only does
    # not.
    reports = _build(cli, write_recipe, tmp_path, tiny_model("swin"), {"ratio": 0.5})
    p = reports["prune"]
    assert p["scope"] == "MLP hidden width only" and p["fallback"]
    assert any(
        "full structural pruning failed" in w and "pruned MLP hidden width only" in w for w in p["warnings"]
    )
    assert p["params_after"] < p["params_before"]
    assert reports["export"]["parity"]["outputs"]["logits"]["cosine"] >= 0.9999


def test_prune_detr_backbone_through_frozen_batchnorms(cli, write_recipe, tmp_path):
    # DETR's backbone uses FrozenBatchNorm2d, which torch-pruning cannot see; vopt folds those first.
    reports = _build(cli, write_recipe, tmp_path, tiny_model("detr"), {"ratio": 0.3})
    p = reports["prune"]
    assert p["frozen_batchnorms_folded"] == 12
    assert p["scope"] == "CNN backbone channels and MLP hidden width"
    assert p["params_before"] / p["params_after"] > 1.5
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
