"""quantize: scheme resolution per target, calibration data sources, peak RSS, recipe write-back."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tests.conftest import tiny_model
from vopt.core.artifact import Preprocess
from vopt.errors import RecipeError
from vopt.quant.calibration import CalibrationSet
from vopt.recipe.sections.quantize import CalibrationSection
from vopt.recipe.write_back import set_nodes, write_back


def _configure(target: str, **quantize):
    from vopt.recipe.models import Recipe
    from vopt.registry import get_target
    from vopt.stages.quantize import QuantizeStage

    recipe = Recipe.model_validate(
        {"name": "u", "model": tiny_model("resnet"), "quantize": quantize, "compile": {"target": target}}
    )
    return QuantizeStage.configure(recipe, get_target(target))


@pytest.mark.parametrize(
    "target, quantize, expected",
    [
        ("cpu", {}, ("ort-qdq", "int8", "uint8", "int8", True)),
        ("tensorrt", {}, ("trt-qdq", "int8", "int8", "int8", True)),
        ("qnn", {}, ("qnn-qdq", "int8", "uint8", "uint8", False)),
        ("qnn", {"precision": "int16"}, ("qnn-qdq", "int16", "uint16", "uint8", False)),
        ("openvino", {}, ("nncf", "int8", None, None, True)),
        ("coreml", {}, ("coreml-weights", "int8", None, "int8", True)),
        ("webgpu", {}, ("fp16", "fp16", None, None, True)),
        ("rocm", {}, ("fp16", "fp16", None, None, True)),
        ("cpu", {"precision": "int4"}, ("int4-weight", "int4", None, None, True)),
        ("cpu", {"precision": "fp16"}, ("fp16", "fp16", None, None, True)),
        (
            "cpu",
            {"activation_type": "int8", "per_channel": False},
            ("ort-qdq", "int8", "int8", "int8", False),
        ),
    ],
)
def test_quant_target_default_schemes(target, quantize, expected):
    cfg = _configure(target, **quantize)
    assert (cfg.scheme, cfg.precision, cfg.activation_type, cfg.weight_type, cfg.per_channel) == expected


def test_quant_fp32_skips_and_bad_combinations_are_recipe_errors():
    assert _configure("cpu", precision="fp32") is None
    with pytest.raises(RecipeError, match="bf16"):
        _configure("cpu", precision="bf16")
    with pytest.raises(RecipeError, match="makes fp16, not int8"):
        _configure("cpu", scheme="fp16", precision="int8")


def test_quant_calibration_sources(tmp_path):
    pre = Preprocess(size=[32, 32])
    shape = [1, 3, 32, 32]
    # images: streamed batches of the requested size, through the contract
    imgs = CalibrationSet(CalibrationSection(samples=10, batch=4), pre, shape)
    batches = list(imgs.batches())
    assert [len(b) for b in batches] == [4, 4, 2] and batches[0].shape[1:] == (3, 32, 32)
    assert (
        imgs.fingerprint()
        == CalibrationSet(CalibrationSection(samples=10, batch=4), pre, shape).fingerprint()
    )
    assert (
        imgs.fingerprint()
        != CalibrationSet(CalibrationSection(samples=10, batch=4, seed=1), pre, shape).fingerprint()
    )
    assert (
        imgs.fingerprint()
        != CalibrationSet(
            CalibrationSection(samples=10, batch=4), Preprocess(size=[32, 32], mean=[0, 0, 0]), shape
        ).fingerprint()
    )
    # .npy (memory-mapped) and .npz
    arr = np.arange(5 * 3 * 32 * 32, dtype=np.float32).reshape(5, 3, 32, 32)
    np.save(tmp_path / "x.npy", arr)
    npy = CalibrationSet(CalibrationSection(data=str(tmp_path / "x.npy"), samples=4, batch=3), pre, shape)
    got = np.concatenate(list(npy.batches()))
    assert npy.kind == "tensors" and np.array_equal(got, arr[:4])
    np.savez(tmp_path / "x.npz", a=arr[:2], b=arr[2:])
    npz = CalibrationSet(CalibrationSection(data=str(tmp_path / "x.npz"), samples=100, batch=2), pre, shape)
    assert npz.count() == 5 and np.array_equal(np.concatenate(list(npz.batches())), arr)
    bad = CalibrationSet(CalibrationSection(data=str(tmp_path / "x.npy")), pre, [1, 3, 16, 16])
    with pytest.raises(RecipeError, match="do not fit the model input"):
        list(bad.batches())
    # synthetic only on request, and it says so
    syn = CalibrationSet(CalibrationSection(synthetic=True, samples=3, batch=2), pre, shape)
    assert syn.kind == "synthetic" and "SYNTHETIC" in syn.describe()
    assert [b.shape for b in syn.batches()] == [(2, 3, 32, 32), (1, 3, 32, 32)]


def test_quant_peak_rss_sees_an_allocation():
    from vopt.quant.memory import PeakRss

    with PeakRss() as m:
        block = np.ones(40_000_000 // 8)  # 40 MB
        block[::512] = 2.0
        del block
    assert m.growth_mb > 30 and m.peak_mb >= m.start_mb


@pytest.mark.parametrize(
    "text",
    [
        "name: a\nmodel: {x: 1}\n",
        "name: a  # keep me\nquantize:\n  precision: int8  # and me\n"
        "  gates: {centered_cosine: '>=0.9'}\ncompile: {target: cpu}\n",
        "name: a\nquantize:\n  exclude:\n    op_types: [Softmax]\n# tail\ncompile: {target: cpu}\n",
        "name: a\nquantize:\n  exclude:\n    nodes:\n      - old\n    op_types: [Softmax]\n"
        "compile: {target: cpu}\n",
        "name: a\nquantize: {precision: int8, exclude: {nodes: [old]}}\n",
        "name: a\nquantize:\n  auto_fallback: true",
    ],
)
def test_quant_write_back_edits_only_the_exclusions(text):
    nodes = ["old", "/model/x/Conv", "n [2]"]
    out = set_nodes(text, nodes)
    before, after = yaml.safe_load(text), yaml.safe_load(out)
    assert after["quantize"]["exclude"]["nodes"] == nodes
    after["quantize"]["exclude"].pop("nodes")
    before.setdefault("quantize", {}).setdefault("exclude", {}).pop("nodes", None)
    if not after["quantize"]["exclude"]:
        after["quantize"].pop("exclude")
        before["quantize"].pop("exclude")
    assert after == before  # nothing else changed
    for comment in ("# keep me", "# and me", "# tail"):
        assert (comment in out) == (comment in text)


def test_quant_write_back_uses_the_manifest(tmp_path):
    from vopt.recipe.resolve import load_recipe

    path = tmp_path / "r.yaml"
    path.write_text(
        yaml.safe_dump(
            {"name": "w", "model": tiny_model("resnet"), "quantize": {"exclude": {"nodes": ["a"]}}}
        )
    )
    loaded = load_recipe(path)
    manifest = {"steps": [{"stage": "quantize", "report": {"fallback": {"kept_float": ["a", "b"]}}}]}
    assert write_back(loaded, manifest) == "quantize.exclude.nodes (+1 layer kept in float)"
    assert yaml.safe_load(path.read_text())["quantize"]["exclude"]["nodes"] == ["a", "b"]
    assert write_back(load_recipe(path), manifest) is None  # already there
    assert write_back(loaded, {"steps": [{"stage": "quantize", "report": {}}]}) is None


def test_quant_missing_scheme_package_is_named_before_any_step(monkeypatch):
    """Checked by the build's preflight (exit 4, naming the extra), not by check/plan, which validate the
    recipe."""
    import importlib.util

    from vopt.errors import BackendUnavailable
    from vopt.pipeline.runner import preflight
    from vopt.registry import get_stage, get_target

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "onnx_ir" else real(name, *a)
    )
    config = _configure("cpu", precision="int4")

    class Step:
        name, stage = "quantize", get_stage("quantize")

    Step.config = config
    with pytest.raises(BackendUnavailable, match=r"onnx_ir.*pip install 'vopt\[int4\]'"):
        preflight([Step], get_target("cpu"))


@pytest.mark.parametrize(
    "target, options, message",
    [
        (
            "openvino",
            {"preset": "fast"},
            r"quantize\.options\.preset: 'fast' is not allowed; use performance or mixed",
        ),
        ("cpu", {"rank_by": "worst"}, r"quantize\.options\.rank_by: 'worst' .*drop, sqnr or measured"),
        (
            "cpu",
            {"fallback_to": "fp16"},
            r"quantize\.options\.fallback_to: 'fp16' is not allowed; use float or int16",
        ),
        (
            "cpu",
            {"block_size": 32},
            r"quantize\.options\.block_size: applies to scheme int4-weight, not 'ort-qdq'",
        ),
        (
            "cpu",
            {"rankby": "drop"},
            r"quantize\.options\.rankby: unknown option \(did you mean `rank_by`\?\); "
            r"scheme 'ort-qdq' takes .*rank_by",
        ),
        (
            "openvino",
            {"fallback_to": "int16"},
            r"quantize\.options\.fallback_to: int16 is not available for scheme 'nncf'",
        ),
        ("coreml", {"palettize_bits": 5}, r"quantize\.options\.palettize_bits: 5 .*1, 2, 3, 4, 6 or 8"),
    ],
)
def test_quant_bad_options_are_recipe_errors_at_plan_time(target, options, message):
    with pytest.raises(RecipeError, match=message):
        _configure(target, options=options)


def test_quant_good_options_pass_and_int4_block_size_is_checked():
    assert (
        _configure(
            "cpu", options={"rank_by": "measured", "fallback_to": "int16", "int16_nodes": ["a"]}
        ).options["rank_by"]
        == "measured"
    )
    assert _configure("openvino", options={"preset": "mixed", "static_shapes": False}).scheme == "nncf"
    assert _configure("qnn", options={"fallback_to": "int16", "int16_nodes": ["a"]}).scheme == "qnn-qdq"
    assert (
        _configure("cpu", precision="int4", options={"block_size": 64, "accuracy_level": 4}).scheme
        == "int4-weight"
    )
    with pytest.raises(RecipeError, match=r"quantize\.options\.block_size: 48 .*power of two >= 16"):
        _configure("cpu", precision="int4", options={"block_size": 48})


def test_quant_options_typo_exits_2_at_plan(write_recipe, cli):
    recipe = write_recipe(
        {
            "name": "o",
            "model": tiny_model("resnet"),
            "compile": {"target": "openvino"},
            "quantize": {"options": {"preset": "fast"}},
        }
    )
    res = cli("plan", recipe)
    assert res.exit_code == 2
    assert "quantize.options.preset" in res.output and "performance or mixed" in res.output


def test_quant_options_errors_point_at_their_line_in_check(write_recipe, cli):
    """Checked against the chosen scheme's Options when the recipe loads: `vopt check` stops there, exit 2."""
    recipe = write_recipe(
        {
            "name": "o",
            "model": tiny_model("resnet"),
            "compile": {"target": "openvino"},
            "quantize": {"options": {"preset": "fast", "palettize_bits": 4}},
        }
    )
    res = cli("check", recipe)
    assert res.exit_code == 2, res.output
    lines = recipe.read_text().splitlines()
    at = {
        key: n for n, text in enumerate(lines, 1) for key in ("preset", "palettize_bits") if f"{key}:" in text
    }
    assert (
        f"recipe.yaml:{at['preset']}: quantize.options.preset: "
        "'fast' is not allowed; use performance or mixed" in res.output
    )
    assert (
        f"recipe.yaml:{at['palettize_bits']}: quantize.options.palettize_bits: applies to scheme "
        "coreml-weights, not 'nncf'"
    ) in res.output
    res = cli(
        "check", recipe, "--set", "quantize.options={block_size: 48}", "--set", "quantize.precision=int4"
    )
    assert res.exit_code == 2
    assert (
        "--set quantize.options={block_size: 48}: quantize.options.block_size: 48 is not allowed"
        in res.output
    )


def test_quant_integer_precision_the_target_scheme_cannot_make():
    assert _configure("rocm", precision="int8").scheme == "ort-qdq"  # rocm's int8_scheme
    with pytest.raises(
        RecipeError,
        match=r"quantize\.precision: the openvino target's scheme 'nncf' makes int8, "
        r"not int16; set quantize.scheme to one that does \(ort-qdq, qnn-qdq\)",
    ):
        _configure("openvino", precision="int16")
    assert _configure("openvino", precision="int16", scheme="ort-qdq").activation_type == "uint16"


def test_quant_unknown_scheme_names_the_registered_ones(write_recipe, cli):
    recipe = write_recipe({"name": "o", "model": tiny_model("resnet"), "quantize": {"scheme": "ort-qd"}})
    res = cli("check", recipe)
    assert res.exit_code == 2
    from vopt.registry import SCHEMES

    assert "quantize.scheme: unknown scheme 'ort-qd' (did you mean `ort-qdq`?); known: " in res.output
    assert f"known: {', '.join(SCHEMES)}" in res.output  # every registered scheme, in the registry's order


def test_quant_int4_key_includes_onnx_ir():
    from vopt.registry import get_target
    from vopt.stages.quantize import QuantizeStage

    cfg = _configure("cpu", precision="int4")
    assert "onnx-ir" in QuantizeStage.extra_tools(cfg, get_target("cpu"))


@pytest.mark.parametrize("family", ["vit", "yolos"])
def test_quant_fingerprint_uses_the_artifact_contract(family):
    """The data fingerprint in the cache key is computed with the family's contract (mean/std, resize, size),
    the one calibration reads images through, not with the recipe's bare `preprocess:` section."""
    from vopt.models.families import get_family
    from vopt.recipe.models import Recipe
    from vopt.registry import get_target
    from vopt.stages.quantize import QuantizeStage

    recipe = Recipe.model_validate(
        {"name": "u", "model": tiny_model(family), "quantize": {"calibration": {"samples": 4}}}
    )
    cfg = QuantizeStage.configure(recipe, get_target("cpu"))
    fam = get_family(family)
    size = recipe.model.input.shape[2:]
    contract = fam.preprocess(list(size))
    assert Preprocess(**cfg.preprocess) == contract
    from vopt.datasets.split import paths

    calib = CalibrationSet(cfg.calibration, contract, cfg.input_shape, paths(cfg.heldout, "calibration"))
    assert QuantizeStage.fingerprint(cfg)["calibration"] == calib.fingerprint()
