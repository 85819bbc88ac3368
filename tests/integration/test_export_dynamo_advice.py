"""An export that fails on an op the dynamo exporter handles (the antialiased bicubic resize that
DINOv2-with-registers uses on its position embeddings) says to set `export.dynamo: true`, and that builds."""

from __future__ import annotations

import pytest

pytest.importorskip("onnxscript")

FACTORY = """
import torch
import torch.nn.functional as F


class Downscaled(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = F.interpolate(torch.relu(self.stem(x)), size=(16, 16), mode="bicubic", antialias=True)
        return self.head(x.mean(dim=(2, 3)))


def build():
    return Downscaled()
"""


def test_legacy_export_failure_on_antialiased_bicubic_suggests_dynamo_and_dynamo_builds(
    write_recipe, cli, tmp_path, monkeypatch
):
    (tmp_path / "aa_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)  # the factory module sits next to the recipe
    monkeypatch.syspath_prepend(str(tmp_path))
    recipe = write_recipe(
        {
            "name": "aa-resize",
            "model": {
                "source": "python",
                "arch": "aa_factory:build",
                "task": "image-classification",
                "weights": "random",
                "input": {"shape": [1, 3, 32, 32]},
            },
            "export": {"parity_samples": 2},
            "compile": {"target": "cpu"},
            "validate": {"samples": 4, "default_gates": False},
        }
    )
    failed = cli("build", recipe, "--out", tmp_path / "out")
    assert failed.exit_code == 1, failed.output
    assert "[export] torch.onnx.export failed" in failed.output
    assert "hint: the dynamo exporter handles aten::_upsample_bicubic2d_aa: set export.dynamo: true" in (
        failed.output
    )
    built = cli("build", recipe, "--out", tmp_path / "out", "--set", "export.dynamo=true", "--json")
    assert built.exit_code == 0, built.output
