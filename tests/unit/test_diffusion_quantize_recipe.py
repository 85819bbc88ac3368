"""Where a pipeline's components calibrate from (vopt.quant.feeds), decided when the recipe is planned: the
calibration prompts are held out from the validation prompts (an overlap the recipe writes is a recipe error
at its line, exit 2, nothing built; the default list leaves them out), the check's prompts are held out from
calibration's, every run has its own seed, and files or random tensors are refused for a pipeline."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import REPO


def _write(tmp_path, quantize: dict | None = None, **extra) -> object:
    data = {"extends": [str(REPO / "recipes" / "sd-cpu.yaml")], "name": "sd-bad", **extra}
    if quantize is not None:
        data["quantize"] = quantize
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _fails(cli, path, tmp_path, *needles: str) -> None:
    res = cli("build", path, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    for needle in needles:
        assert needle in res.output, res.output
    assert not (tmp_path / "out" / "sd-bad").exists()


def test_calibration_prompts_that_are_validation_prompts_are_a_recipe_error(cli, tmp_path):
    path = _write(
        tmp_path, {"precision": "int8", "calibration": {"prompts": ["a cat", "A red bicycle in  the SNOW"]}}
    )
    _fails(
        cli,
        path,
        tmp_path,
        "bad.yaml:7: quantize.calibration.prompts: 'A red bicycle in  the SNOW' also in "
        "validate.pipeline.prompts",
    )


def test_a_components_calibration_prompts_are_checked_too(cli, tmp_path):
    prompts = ["a photograph of an astronaut riding a horse"]
    path = _write(
        tmp_path,
        {"precision": "int8"},
        components={"unet": {"quantize": {"calibration": {"prompts": prompts}}}},
    )
    _fails(cli, path, tmp_path, "components.unet.quantize.calibration.prompts: 'a photograph of an astronaut")


@pytest.mark.parametrize("key, value", [("data", "photos/"), ("synthetic", True)])
def test_a_pipeline_does_not_calibrate_on_files_or_random_tensors(cli, tmp_path, key, value):
    path = _write(tmp_path, {"precision": "int8", "calibration": {key: value}})
    _fails(
        cli, path, tmp_path, f"quantize.calibration.{key}: a pipeline's components calibrate on the inputs"
    )


def test_prompts_on_a_model_that_runs_no_pipeline(cli, tmp_path, write_recipe):
    recipe = write_recipe(
        {
            "name": "tiny",
            "model": {
                "source": "timm",
                "id": "resnet18",
                "weights": "random",
                "input": {"shape": [1, 3, 32, 32]},
            },
            "compile": {"target": "cpu"},
            "quantize": {"precision": "int8", "calibration": {"prompts": ["a cat"]}},
        }
    )
    res = cli("check", recipe)
    assert res.exit_code == 2 and "quantize.calibration.prompts: only a pipeline of components" in res.output


def test_the_planned_runs_hold_out_prompts_and_seeds():
    from vopt.quant.feeds import DEFAULT_PROMPTS, SEEDS, chosen_prompts, feeds_from, split
    from vopt.recipe.resolve import load_recipe
    from vopt.recipe.sections.quantize import QuantizeSection

    recipe = load_recipe(REPO / "recipes" / "sd-cpu.yaml").recipe
    q = QuantizeSection(precision="int8")  # sd-cpu has no quantize section: its defaults
    data = feeds_from(recipe, q.calibration, q.check.holdout)
    validation = recipe.validate_.pipeline.prompts
    calibration = [p for p, _ in data["calibration_runs"]]
    check = [p for p, _ in data["check_runs"]]
    assert not set(calibration) & set(check) and not (set(calibration) | set(check)) & set(validation)
    assert len(calibration) == len(check) == SEEDS * len(DEFAULT_PROMPTS) // 2  # check.holdout 0.5
    seeds = [s for _, s in data["calibration_runs"] + data["check_runs"]]
    assert len(set(seeds)) == len(seeds) and recipe.validate_.pipeline.seed not in seeds
    # the default list leaves out a validation prompt; a recipe's own list is taken as written
    assert DEFAULT_PROMPTS[0] not in chosen_prompts(None, [DEFAULT_PROMPTS[0].upper()])
    assert chosen_prompts(["x", "y"], []) == ["x", "y"]
    assert split(["a", "b", "c", "d", "e"], 0.5) == (["a", "b"], ["c", "d", "e"])
    assert split(["a"], 0.5) == (["a"], ["a"])  # one prompt serves both
