"""A quantize search (or auto_fallback) chooses its plan on the check's images, so validate must not report on
them: its figures would be the ones the plan was tuned for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tiny_model
from vopt.datasets.split import content_hash
from vopt.quant.heldout import check_files, for_quantize, for_validate
from vopt.recipe.resolve import load_recipe


def _photos(folder: Path, n: int) -> Path:
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):  # distinct content, so the hash split and the overlap check see n images
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"p{i:02d}.png")
    return folder


def _recipe(write_recipe, photos: Path, quantize: dict, validate: dict | None = None):
    data = {
        "name": "heldout",
        "model": tiny_model("resnet"),
        "quantize": {
            "precision": "int8",
            "calibration": {"data": str(photos), "samples": 8},
            "check": {"samples": 6},
            **quantize,
        },
        "compile": {"target": "cpu"},
        "validate": {"data": str(photos), "samples": 40, **(validate or {})},
    }
    return load_recipe(write_recipe(data)).recipe


def _check_hashes(recipe) -> set[str]:  # what the quantize stage's check measures on
    q = recipe.quantize
    return {content_hash(p) for p in check_files(q.check, for_quantize(q, True)["heldout"])}


@pytest.mark.parametrize("tuned", [{"search": {"budget_s": 60}}, {"auto_fallback": True}])
def test_validate_leaves_out_the_images_the_plan_was_chosen_on(write_recipe, tmp_path, tuned):
    recipe = _recipe(write_recipe, _photos(tmp_path / "photos", 40), tuned)
    check = _check_hashes(recipe)
    held = for_validate(recipe)
    validate = {content_hash(Path(p)) for p in held["check"]}
    assert len(check) == 6 and not (validate & check)
    plain = for_validate(_recipe(write_recipe, tmp_path / "photos", {}))
    assert len(plain["check"]) == len(held["check"]) + 6  # without a search, only calibration is left out
    assert "less the 6 the quantize check measures on" in held["how"]


def test_no_image_left_for_validate_is_warned_as_in_sample(write_recipe, tmp_path):
    photos = _photos(tmp_path / "photos", 12)
    tuned = {"search": {"budget_s": 60}, "check": {"samples": 40}}  # the check takes every held-out image
    for validate in ({}, {"allow_overlap": True}):
        held = for_validate(_recipe(write_recipe, photos, tuned, validate))
        assert held["check"] and "IN-SAMPLE for quantize.search" in held["how"]
        (warning,) = [w for w in held["warnings"] if "quantize.search chooses its plan on" in w]
        assert "validate's figures are optimistic" in warning
