"""A check that measured nothing never passes (issue 29). PaddlePaddle's ONNX files write `dim_value: -1` for
an open batch; read as a static batch of -1, no batch ran, `compare_outputs` returned no metric, `cosine
1.000000` was printed, the default gates were skipped as "not measured" and the build exited 0 (with an
explicit gate, 2: "bad recipe"). Now a size of 0 or less is open everywhere a batch is read, and a comparison
with nothing in it is its own failure, exit 3."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from vopt.core.artifact import Artifact, IOSpec, Preprocess, TensorSpec
from vopt.errors import GateFailed


def _paddle_model(name: str) -> Path | None:
    """A real PaddlePaddle export shipped in the rapidocr-onnxruntime wheel (located without importing it:
    the package imports cv2)."""
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "models" / name
    return path if path.is_file() else None


# input [-1, 3, ?, ?]: dim_value -1, then `?` for both H and W
CLS = _paddle_model("ch_ppocr_mobile_v2.0_cls_infer.onnx")
needs_cls = pytest.mark.skipif(
    CLS is None,
    reason="rapidocr-onnxruntime (PP-OCR's ONNX files) is not installed: "
    "pip install --no-deps rapidocr-onnxruntime==1.4.4",
)


def test_a_static_batch_of_minus_one_is_open_and_runs_every_image():
    """Before: `range(0, 6, -1)` ran nothing and returned {}."""
    from vopt.runtimes.base import run_batches, run_feeds

    seen: list[int] = []

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        x = feeds["x"]
        seen.append(len(x))
        return {"y": x.sum(axis=1, keepdims=True)}

    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    for bad in (-1, 0):
        seen.clear()
        out = run_batches(run, "x", [x[:4], x[4:]], static_batch=bad)
        assert seen == [4, 2] and out["y"].ravel().tolist() == [1, 5, 9, 13, 17, 21]
        seen.clear()
        assert run_feeds(run, {"x": x}, static_batch=bad)["y"].shape == (6, 1) and seen == [6]


def test_a_comparison_of_nothing_fails_with_its_own_message_and_exit_3():
    """Before: {"outputs": {}, "worst_cosine": 1.0}, and every gate after it skipped or a recipe error."""
    from vopt.validate.reference import compare_outputs

    ref = {"logits": np.ones((4, 3), np.float32)}
    for out in ({}, {"probs": np.ones((4, 3), np.float32)}, {"logits": np.zeros((0, 3), np.float32)}):
        with pytest.raises(GateFailed) as err:
            compare_outputs(ref, out, where="validate")
        assert err.value.exit_code == 3
        assert err.value.message.startswith("validate compared nothing")
        assert err.value.failures[0]["metric"] == "outputs_compared" and not err.value.failures[0]["passed"]
        assert "reference: logits [4, 3]" in err.value.lines
    same = compare_outputs(ref, {"logits": ref["logits"]})
    assert same["outputs"]["logits"]["cosine"] == pytest.approx(1.0)


@needs_cls
def test_validate_runs_an_artifact_whose_io_says_batch_minus_one(tmp_path):
    """An artifact whose io spec carries -1 (as an older vopt read the file, or another format plugin reports
    it) is validated on every image, not passed with nothing compared."""
    from vopt.core.context import Context
    from vopt.recipe.sections.validate import ValidateSection
    from vopt.registry import get_target
    from vopt.validate.run import validate_artifact

    target = get_target("cpu")
    artifact = Artifact(
        path=str(CLS),
        format="onnx",
        io=IOSpec(inputs=[TensorSpec(name="x", shape=[-1, 3, 48, 192])], outputs=[]),
        preprocess=Preprocess(size=[48, 192], mean=[0.5] * 3, std=[0.5] * 3),
        meta={"task": "image-classification"},
    )
    ctx = Context(target=target, workdir=tmp_path, artifacts={"load": artifact})
    section = ValidateSection(samples=6, gates={"cosine": ">=0.99"}, default_gates=False)
    report = validate_artifact(artifact, section, target.Config(target="cpu"), ctx)
    (name,) = report["metrics"]
    assert report["status"] == "ok" and report["samples"] == 6
    assert report["metrics"][name]["cosine"] == pytest.approx(1.0, abs=1e-6)
    assert [g["metric"] for g in report["gates"]] == ["cosine"] and report["gates"][0]["passed"]


@needs_cls
def test_paddle_model_with_open_dims_quantizes_and_every_check_measures(write_recipe, cli, tmp_path):
    """The real file end to end, int8 on cpu, with an explicit gate. Before: `make_dim_param_fixed('?', 48)`
    pinned H and W (both named `?`) to 48 and the quantize step ended in ORT's INVALID_ARGUMENT (exit 1); and
    `dim_value: -1` was left for the calibration reader as a static batch of -1 (no calibration batch)."""
    recipe = {
        "name": "ppocr-cls",
        "model": {
            "source": "onnx",
            "path": str(CLS),
            "task": "image-classification",
            "input": {"shape": [1, 3, 48, 192], "name": "x"},
        },
        "preprocess": {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "quantize": {
            "precision": "int8",
            "calibration": {"samples": 8, "batch": 4},
            "check": {"samples": 8, "benchmark": False},
            "gates": {"cosine": ">=0.9"},
            "default_gates": False,
        },
        "compile": {"target": "cpu"},
        "validate": {"samples": 8, "gates": {"cosine": ">=0.9"}, "default_gates": False},
    }
    res = cli("build", write_recipe(recipe), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    steps = {s["stage"]: s["report"] for s in m["steps"]}
    q = steps["quantize"]
    assert q["calibration"]["samples"] == 8
    assert q["scheme_info"]["fixed_dims"] == ["-1 (dim 0)=1", "? (dim 2)=48", "? (dim 3)=192"]
    # measured: quantize check cosine 0.98, validate 0.98 (8 photos)
    for report in (q["check"], steps["validate"]):
        assert report["metrics"] and all(v["cosine"] >= 0.9 for v in report["metrics"].values())
    assert [g["metric"] for g in steps["validate"]["gates"]] == ["cosine"]
