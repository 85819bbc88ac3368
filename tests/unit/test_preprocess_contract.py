"""The preprocessing contract is derived once: what the plan knows before load (the quantize stage
fingerprints its data with it) is what the hf source gives the loaded artifact."""

from __future__ import annotations

import pytest

from tests.conftest import tiny_model
from vopt.models.resolve import planned_preprocess, resolve_preprocess
from vopt.recipe.models import Recipe
from vopt.registry import get_source


@pytest.mark.parametrize("task", [None, "feature-extraction"])
def test_plan_and_load_agree_on_the_contract(task):
    model = {**tiny_model("vit"), **({"task": task} if task else {})}
    recipe = Recipe.model_validate({"name": "u", "model": model, "preprocess": {"resize": 72}})
    planned = planned_preprocess(recipe.model, recipe.preprocess)
    loaded = get_source("hf").load(recipe.model)
    assert loaded.family.task == (task or "image-classification")
    assert resolve_preprocess(recipe.preprocess, recipe.model.input.shape, loaded.family) == planned
    assert planned.mean == [0.5, 0.5, 0.5] and planned.resize == 72  # ViT's contract, the recipe's override
