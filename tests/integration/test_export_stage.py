"""export: dynamo option, dynamic batch, failures that name the op and module, and matched detections."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest

from tests.conftest import tiny_model

SPECTRAL = """
import torch


class Spectral(torch.nn.Module):
    def forward(self, x):
        return torch.fft.fft2(x).abs()


def build():
    return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Sequential(torch.nn.ReLU(), Spectral()),
                               torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
"""


def _build(cli, write_recipe, tmp_path, **recipe):
    path = write_recipe({"name": "exp", "validate": None, **recipe})
    return cli("build", path, "--out", tmp_path / "out", "--json")


def _reports(result):
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    return manifest, {s["stage"]: s["report"] for s in manifest["steps"]}


@pytest.mark.parametrize("family", ["swin"])  # Swin: the family that needs eager attention under dynamo
def test_export_dynamo_exporter_with_dynamic_batch(cli, write_recipe, tmp_path, family):
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch
    from vopt.runtimes.ort import runner

    manifest, reports = _reports(
        _build(
            cli,
            write_recipe,
            tmp_path,
            model=tiny_model(family),
            export={"dynamo": True, "parity_samples": 3},
        )
    )
    ex = reports["export"]
    assert ex["exporter"] == "dynamo" and ex["opset"] >= 18
    assert ex["parity"]["outputs"]["logits"]["cosine"] >= 0.9999
    assert manifest["artifact"]["io"]["inputs"][0]["shape"][0] == "batch"
    pre = manifest["artifact"]["preprocess"]
    images = load_batch(None, Preprocess(size=[64, 64], mean=pre["mean"], std=pre["std"]), 3)
    out = runner(tmp_path / "out" / "exp" / manifest["artifact"]["file"])({"pixel_values": images})
    assert out["logits"].shape[0] == 3


def test_export_static_batch(cli, write_recipe, tmp_path):
    model = tiny_model("vit", input={"shape": [2, 3, 64, 64]})
    manifest, reports = _reports(
        _build(cli, write_recipe, tmp_path, model=model, export={"dynamic_batch": False, "parity_samples": 3})
    )
    assert manifest["artifact"]["io"]["inputs"][0]["shape"] == [2, 3, 64, 64]
    assert reports["export"]["parity"]["samples"] == 3  # padded to the static batch, then trimmed
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999


def test_export_failure_names_the_op_and_the_module(cli, write_recipe, tmp_path, monkeypatch):
    name = f"spectral_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(SPECTRAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        model={"source": "python", "arch": f"{name}:build", "input": {"shape": [1, 3, 16, 16]}},
    )
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "[export]" in text and "op: aten::fft_fft2" in text
    assert "module: 1.1 (Spectral)" in text and f"{name}.py" in text
    assert "Traceback" not in result.output and "graph(" not in result.output


def test_export_matched_detections_survive_query_reordering():
    """Swapped queries (what top-k does on a 1e-4 difference) still match; a wrong model does not."""
    from vopt.validate.reference import compare_outputs

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 30, 6)).astype(np.float32)
    boxes = rng.uniform(size=(2, 30, 4)).astype(np.float32)
    perm = rng.permutation(30)
    out = {"logits": logits[:, perm] + np.float32(1e-6), "pred_boxes": boxes[:, perm]}
    ref = {"logits": logits, "pred_boxes": boxes}
    assert compare_outputs(ref, out)["outputs"]["logits"]["cosine"] < 0.5  # positional comparison fails
    matched = compare_outputs(ref, out, skip=("logits", "pred_boxes"))
    moved = int((perm != np.arange(30)).sum()) * 2
    assert (
        matched["outputs"]["logits"]["matched"] and matched["outputs"]["logits"]["reordered_queries"] == moved
    )
    assert matched["worst_cosine"] > 0.999999
    wrong = {
        "logits": rng.normal(size=logits.shape).astype(np.float32),
        "pred_boxes": rng.uniform(size=boxes.shape).astype(np.float32),
    }
    assert compare_outputs(ref, wrong, skip=("logits", "pred_boxes"))["outputs"]["logits"]["cosine"] < 0.8


def test_export_parity_check_fails_the_build_when_ort_drifts(cli, write_recipe, tmp_path, monkeypatch):
    """The parity check is real: make what ORT returns drift and the export stage stops with exit 1."""
    import vopt.runtimes.ort as ort_mod

    real = ort_mod.runner

    def drifting(path, **kw):
        r = real(path, **kw)
        inner = r.run
        noise = np.random.default_rng(1)
        r.run = lambda feeds: {
            k: v + noise.normal(scale=np.abs(v).mean(), size=v.shape).astype(v.dtype)
            for k, v in inner(feeds).items()
        }
        return r

    monkeypatch.setattr(ort_mod, "runner", drifting)
    result = _build(cli, write_recipe, tmp_path, model=tiny_model("resnet"))
    assert result.exit_code == 1
    assert "drifts from PyTorch beyond the resnet tolerance" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("family", "output", "size"), [("segformer", "logits", 96), ("dinov2", "last_hidden_state", 48)]
)
def test_export_dynamic_height_width_follows_the_family_output_axes(
    cli, write_recipe, tmp_path, family, output, size
):
    """Input height/width dynamic: the family's spatial output axes are dynamic too, and ORT at a new size
    matches PyTorch at that size."""
    import torch

    from vopt.core.cache import Cache
    from vopt.models.resolve import OutputWrapper, family_of, load_module
    from vopt.runtimes.ort import runner

    model = tiny_model(family)
    model["input"]["dynamic"] = {"height": [32, 64, 128], "width": [32, 64, 128]}
    manifest, reports = _reports(
        _build(cli, write_recipe, tmp_path, model=model, export={"parity_samples": 2})
    )
    shape = next(o for o in manifest["artifact"]["io"]["outputs"] if o["name"] == output)["shape"]
    spatial = shape[1:2] if family == "dinov2" else shape[2:]
    assert spatial and all(isinstance(d, str) for d in spatial), shape
    x = np.random.default_rng(0).normal(size=(1, 3, size, size)).astype(np.float32)
    got = runner(tmp_path / "out" / "exp" / manifest["artifact"]["file"])({"pixel_values": x})[output]
    loaded = Cache().get(manifest["steps"][0]["key"]).artifact
    with torch.no_grad():
        ref = OutputWrapper.wrap(load_module(loaded), family_of(loaded))(torch.from_numpy(x))[0].numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 1e-4
