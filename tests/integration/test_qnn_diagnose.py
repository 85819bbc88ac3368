"""A runtime that rejects the whole graph gets it bisected: ConvNeXtV2's GRN on QNN HTP is named, and the
exclusion vopt suggests makes the build pass. Native log lines go to the log file, not the terminal."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytest.importorskip("onnxruntime_qnn")

CONVNEXTV2 = {
    "source": "hf",
    "id": "tiny-convnextv2",
    "family": "convnext",
    "weights": "random",
    "config": {
        "model_type": "convnextv2",
        "hidden_sizes": [16, 32, 64, 128],
        "depths": [1, 1, 1, 1],
        "num_labels": 10,
        "image_size": 64,
    },
    "input": {"shape": [1, 3, 64, 64]},
}


def test_qnn_finalize_failure_names_the_grn_nodes_and_the_exclusion_builds(write_recipe, cli, tmp_path):
    # Random weights and 4 images: the default gates would judge noise; this test is about the diagnosis.
    quant = {
        "precision": "int8",
        "calibration": {"samples": 4},
        "check": {"samples": 4, "benchmark": False},
        "default_gates": False,
    }
    recipe = {
        "name": "cnv2-qnn",
        "model": CONVNEXTV2,
        "quantize": quant,
        "compile": {"target": "qnn"},
        "validate": {"samples": 2, "default_gates": False},
    }
    # A real process, so that what native libraries write to file descriptor 2 is seen too.
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "vopt", "build", str(write_recipe(recipe)), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    out = proc.stderr
    assert "QNN HTP rejected the graph" in out and "QNN_COMMON_ERROR_MEM_ALLOC" in out
    for op in ("ReduceL2", "ReduceMean", "Div"):
        assert f"grn/{op} ({op})" in out, out
    assert "\x1b" not in out and "LIBNATIVE" not in out  # the QNN library's own lines are in the log file
    log = re.search(r"native log: (\S+)", out).group(1)
    assert "LIBNATIVE" in Path(log).read_text()
    hint = re.search(r"quantize: (\{exclude: .*\}\})", out).group(1)
    exclude = yaml.safe_load(hint)["exclude"]
    assert exclude == {"nodes": ["/model/convnextv*/encoder/stages.*/layers.*/grn/*"]}

    recipe["quantize"] = {**quant, "exclude": exclude}
    res = cli("build", write_recipe(recipe, "fixed.yaml"), "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
