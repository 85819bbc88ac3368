"""Outputs that are NaN or inf fail export parity and validation with their own message: a cosine of NaN
compares false with every threshold, so a NaN-producing artifact used to pass parity with exit 0."""

from __future__ import annotations

import json
import re
import uuid

import pytest

NET = """
import torch
import torch.nn as nn


class Overflow(nn.Module):
    '''Finite weights whose activations overflow float32: every output is NaN or inf.'''

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        y = self.conv(x).mean((2, 3)) * 1e30
        return self.head(y * y * y)


def build():
    return Overflow()
"""


@pytest.fixture
def netmod(tmp_path, monkeypatch):
    name = f"nannet_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def _recipe(write_recipe, netmod, **extra):
    return write_recipe(
        {
            "name": "nan",
            "model": {"source": "python", "arch": f"{netmod}:build", "input": {"shape": [1, 3, 32, 32]}},
            **extra,
        }
    )


def test_nan_outputs_fail_export_parity(cli, write_recipe, tmp_path, netmod):
    result = cli("build", _recipe(write_recipe, netmod, validate=None), "--out", tmp_path / "out", "--json")
    assert result.exit_code == 3, result.output
    assert "export parity: outputs are not finite (NaN or inf)" in result.output
    assert re.search(r"artifact output logits: (\d+) of \1 values are NaN or inf", result.output)
    manifest = json.loads((tmp_path / "out" / "nan" / "manifest.json").read_text())
    assert manifest["status"] == "gate_failed" and manifest["artifact"] is None


def test_nan_outputs_fail_validation(cli, write_recipe, tmp_path, netmod):
    recipe = _recipe(write_recipe, netmod, export={"parity": False}, validate={"samples": 4})
    result = cli("build", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 3, result.output
    assert "validate: outputs are not finite (NaN or inf)" in result.output
    assert "the reference overflows too" in result.output
