"""Validation of a model with a large output holds a chunk of its outputs, not every sample's: the peak
memory of a build barely grows with validate.samples. Before, each image added its outputs on both sides and
their float64 copies (about 11 MB an image for this 16 x 128 x 128 map; 500 images of a 64-channel one
reached 20 GB and were killed by the kernel)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IMAGENET_SAMPLES

SEGNET = """
import torch.nn as nn


def build():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 1))
"""


def _peak_rss_mb(tmp_path: Path, samples: int) -> tuple[float, str]:
    """Build in a child process and return its peak resident memory (MB), from the kernel's accounting."""
    recipe = tmp_path / f"seg{samples}.yaml"
    recipe.write_text(
        f"name: seg{samples}\n"
        "model: {source: python, arch: 'segnet:build', weights: random, task: semantic-segmentation,"
        " input: {shape: [1, 3, 128, 128]}}\n"
        f"validate: {{data: {IMAGENET_SAMPLES}, samples: {samples}, default_gates: false}}\n"
    )
    env = {
        **os.environ,
        "VOPT_CACHE_DIR": str(tmp_path / "cache"),
        "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(tmp_path / "out")],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output = proc.stdout.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, output[-3000:]
    return usage.ru_maxrss / 1024, output  # ru_maxrss is in KB on Linux


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss units differ elsewhere")
@pytest.mark.skipif(not IMAGENET_SAMPLES.is_dir(), reason=f"needs {IMAGENET_SAMPLES}")
def test_validating_a_large_output_holds_a_chunk_not_every_sample(tmp_path):
    (tmp_path / "segnet.py").write_text(SEGNET)
    small, _ = _peak_rss_mb(tmp_path, 48)  # also builds load/export/compile: the next build reuses them
    large, output = _peak_rss_mb(tmp_path, 208)
    assert "miou 1.000" in output  # the label maps kept for mIoU, from the streamed outputs
    # 160 more images of a 16 x 128 x 128 output: about 1.7 GB more before; now their input pixels (0.2 MB
    # each, held twice while they are stacked) and label maps, and the allocator's noise.
    assert large - small < 150, f"peak RSS {small:.0f} MB with 48 images, {large:.0f} MB with 208"
