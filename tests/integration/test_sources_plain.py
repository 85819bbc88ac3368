"""Non-HF sources: python factories, torch checkpoints, TorchScript, torch.export programs and ONNX files,
each built for real and checked against the original module; and the errors for bad input."""

from __future__ import annotations

import json
import uuid

import numpy as np
import pytest
import torch

NET = """
import torch.nn as nn


def build(width=8, num_classes=10):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
        nn.Conv2d(width, width * 2, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(width * 2), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width * 2, num_classes),
    )
"""
SHAPE = [1, 3, 32, 32]


@pytest.fixture
def netmod(tmp_path, monkeypatch):
    """A user module with a factory, importable under a unique name."""
    name = f"usernet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _net(netmod, **kw):
    import importlib

    from vopt.models.init import sane_random_init

    return sane_random_init(importlib.import_module(netmod).build(**kw), SHAPE, seed=1)


def _build(cli, write_recipe, tmp_path, model, **extra):
    recipe = write_recipe(
        {"name": "src", "model": {**model, "input": {"shape": SHAPE}}, "validate": None, **extra}
    )
    return cli("build", recipe, "--out", tmp_path / "out", "--json")


def _ok(result):
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)
    return manifest, {s["stage"]: s["report"] for s in manifest["steps"]}


def _same_as(manifest, tmp_path, module):
    """The built artifact, run by ORT on real images, reproduces the user's own module."""
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch
    from vopt.runtimes.ort import runner

    images = load_batch(None, Preprocess(size=SHAPE[2:]), 4)
    out = runner(tmp_path / "out" / "src" / manifest["artifact"]["file"])({"pixel_values": images})
    with torch.no_grad():
        ref = module(torch.from_numpy(images)).numpy()
    got = next(iter(out.values()))
    assert np.abs(got - ref).max() < 1e-4
    assert np.linalg.norm(ref - ref.mean(0)) / np.linalg.norm(ref) > 0.05  # outputs depend on the image


def test_sources_python_factory_with_kwargs_and_fuse(cli, write_recipe, tmp_path, netmod):
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        {"source": "python", "arch": f"{netmod}:build", "kwargs": {"width": 4}, "weights": "random"},
        fuse={},
    )
    _, reports = _ok(result)
    assert reports["fuse"]["conv_bn_fused"] == 2
    assert reports["load"]["params"] == 4 * 27 + 8 + 8 * 36 + 16 + 8 * 10 + 10
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999


def test_sources_torch_state_dict_checkpoint_reproduces_module(cli, write_recipe, tmp_path, netmod):
    net = _net(netmod).eval()
    torch.save({"state_dict": net.state_dict()}, tmp_path / "ckpt.pth")
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        {"source": "torch", "path": str(tmp_path / "ckpt.pth"), "arch": f"{netmod}:build"},
    )
    manifest, reports = _ok(result)
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
    _same_as(manifest, tmp_path, net)


def test_sources_torch_full_module_needs_trust(cli, write_recipe, tmp_path, netmod):
    net = _net(netmod).eval()
    torch.save(net, tmp_path / "full.pt")
    model = {"source": "torch", "path": str(tmp_path / "full.pt")}
    refused = _build(cli, write_recipe, tmp_path, model)
    assert refused.exit_code == 2
    assert "trust: true" in refused.output and "Traceback" not in refused.output
    manifest, _ = _ok(_build(cli, write_recipe, tmp_path, {**model, "trust": True}))
    _same_as(manifest, tmp_path, net)
    assert manifest["trust_granted"][0]["needed_for"].startswith("unpickling the full module in")


def test_sources_torchscript_file(cli, write_recipe, tmp_path, netmod):
    net = _net(netmod).eval()
    torch.jit.save(torch.jit.trace(net, torch.randn(*SHAPE)), str(tmp_path / "net.ts"))
    result = _build(
        cli, write_recipe, tmp_path, {"source": "torchscript", "path": str(tmp_path / "net.ts")}, fuse={}
    )
    manifest, reports = _ok(result)
    assert "fixed graph" in reports["fuse"]["summary"]
    _same_as(manifest, tmp_path, net)


def test_sources_exported_program_pt2(cli, write_recipe, tmp_path, netmod):
    net = _net(netmod).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(net, (torch.randn(2, *SHAPE[1:]),), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(tmp_path / "net.pt2"))
    manifest, reports = _ok(
        _build(cli, write_recipe, tmp_path, {"source": "exported", "path": str(tmp_path / "net.pt2")})
    )
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999
    _same_as(manifest, tmp_path, net)


def test_sources_onnx_file_skips_torch_stages(cli, write_recipe, tmp_path, netmod):
    net = _net(netmod).eval()
    torch.onnx.export(
        net,
        (torch.randn(*SHAPE),),
        str(tmp_path / "net.onnx"),
        dynamo=False,
        input_names=["pixel_values"],
        output_names=["logits"],
        dynamic_axes={"pixel_values": {0: "n"}},
    )
    manifest, reports = _ok(
        _build(
            cli,
            write_recipe,
            tmp_path,
            {"source": "onnx", "path": str(tmp_path / "net.onnx")},
            fuse={},
            prune={"ratio": 0.5},
        )
    )
    assert [s["stage"] for s in manifest["steps"]] == ["load", "compile"]
    assert manifest["artifact"]["io"]["outputs"][0]["name"] == "logits"
    _same_as(manifest, tmp_path, net)


def test_sources_checkpoint_that_does_not_match_the_arch(cli, write_recipe, tmp_path, netmod):
    torch.save(_net(netmod, width=6).state_dict(), tmp_path / "other.pth")
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        {"source": "torch", "path": str(tmp_path / "other.pth"), "arch": f"{netmod}:build"},
    )
    assert result.exit_code == 1
    assert "does not match the architecture" in result.output and "size mismatch" in result.output
    assert "Traceback" not in result.output


def test_sources_truncated_onnx_file(cli, write_recipe, tmp_path, netmod):
    torch.onnx.export(_net(netmod).eval(), (torch.randn(*SHAPE),), str(tmp_path / "net.onnx"), dynamo=False)
    data = (tmp_path / "net.onnx").read_bytes()
    (tmp_path / "cut.onnx").write_bytes(data[: len(data) // 2])
    result = _build(cli, write_recipe, tmp_path, {"source": "onnx", "path": str(tmp_path / "cut.onnx")})
    assert result.exit_code == 1
    assert "not a valid ONNX model" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("arch", "expected"),
    [
        ("usernet_missing_mod:build", "cannot import module 'usernet_missing_mod'"),
        ("{mod}:buidl", "has no 'buidl' (did you mean `build`?)"),
        ("{mod}", "expected `module:factory`"),
    ],
)
def test_sources_bad_module_factory(cli, write_recipe, tmp_path, netmod, arch, expected):
    result = _build(cli, write_recipe, tmp_path, {"source": "python", "arch": arch.format(mod=netmod)})
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


def test_sources_unknown_source_and_family_are_recipe_errors(cli, write_recipe, tmp_path):
    result = _build(cli, write_recipe, tmp_path, {"source": "tourch", "path": "x.pt", "family": "resnett"})
    assert result.exit_code == 2
    assert "unknown source 'tourch' (did you mean `torch`?)" in result.output
    assert "unknown family 'resnett' (did you mean `resnet`?)" in result.output
    assert "Traceback" not in result.output


def test_sources_editing_the_factory_file_invalidates_the_cache(cli, write_recipe, tmp_path, netmod):
    import os

    model = {"source": "python", "arch": f"{netmod}:build", "weights": "random"}
    first, before = _ok(_build(cli, write_recipe, tmp_path, model))
    again, _ = _ok(_build(cli, write_recipe, tmp_path, model))
    assert all(s["cached"] for s in again["steps"])
    src = tmp_path / f"{netmod}.py"
    src.write_text(src.read_text().replace("width=8", "width=6"))
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 10**9))
    edited, after = _ok(_build(cli, write_recipe, tmp_path, model))
    assert not edited["steps"][0]["cached"]
    assert after["load"]["params"] < before["load"]["params"]  # the edited code ran, not the imported copy


def test_sources_python_model_prunes_and_keeps_its_head(cli, write_recipe, tmp_path, netmod):
    _, reports = _ok(
        _build(
            cli,
            write_recipe,
            tmp_path,
            {"source": "python", "arch": f"{netmod}:build", "weights": "random"},
            fuse={},
            prune={"ratio": 0.5},
        )
    )
    p = reports["prune"]
    assert p["ignored_layers"] == ["8"]  # the final Linear produces the output: its 10 classes stay
    assert p["params_after"] < p["params_before"] / 2
    assert reports["export"]["parity"]["worst_cosine"] >= 0.9999


def test_sources_arch_may_name_any_callable_because_a_recipe_is_code(cli, write_recipe, tmp_path):
    """The rule (docs/reliability.md): a recipe is code, like a Makefile, so `arch:` may name any callable,
    with no `trust:`; only files and cache entries are data. There is no list of refused modules."""
    marker = tmp_path / "ran"
    result = _build(
        cli,
        write_recipe,
        tmp_path,
        {"source": "python", "arch": "subprocess:getoutput", "kwargs": {"cmd": f"touch {marker}"}},
    )
    assert marker.exists()  # what the recipe names runs, as a Makefile's commands do
    assert result.exit_code == 1 and "returned str, not a torch.nn.Module" in result.output
    assert "Traceback" not in result.output


def test_sources_arch_trust_is_recorded_in_the_manifest(cli, write_recipe, tmp_path, netmod):
    manifest, _ = _ok(
        _build(cli, write_recipe, tmp_path, {"source": "python", "arch": f"{netmod}:build", "trust": True})
    )
    assert manifest["trust_granted"] == [
        {
            "stage": "load",
            "arch": f"{netmod}:build",
            "path": None,
            "needed_for": "nothing: trust was granted but not needed",
        }
    ]
    plain, _ = _ok(_build(cli, write_recipe, tmp_path, {"source": "python", "arch": f"{netmod}:build"}))
    assert plain["trust_granted"] == []


def test_sources_arch_from_outside_the_recipe_directory_builds(
    cli, write_recipe, tmp_path_factory, tmp_path, monkeypatch
):
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    name = f"farnet_{uuid.uuid4().hex[:8]}"
    (elsewhere / f"{name}.py").write_text(NET)
    monkeypatch.syspath_prepend(str(elsewhere))
    manifest, reports = _ok(
        _build(cli, write_recipe, tmp_path, {"source": "python", "arch": f"{name}:build"})
    )
    assert manifest["trust_granted"] == [] and reports["load"]["params"] > 0
