"""What a build prints in a CI log: no third-party progress bar or warning line gets through except as
vopt's own summary line, and validation advances a bar whose count is right."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from tests.conftest import REPO, tiny_model
from vopt.core.progress import Reporter

BAR_CHARS = "━╸╺█▉▊▋▌▍▎▏"


class Recording(Reporter):
    """Every bar a build opens: description -> [total, advanced]."""

    def __init__(self) -> None:
        self.bars: dict[str, list[int | None]] = {}

    @contextlib.contextmanager
    def bar(self, description: str, total: int | None) -> Iterator[Callable[[int], None]]:
        seen = self.bars[description] = [total, 0]

        def advance(n: int = 1) -> None:
            seen[1] += n

        yield advance


def test_validate_bar_counts_each_run_of_a_static_batch_artifact(write_recipe, tmp_path):
    """A static batch-1 artifact validated in batches of 4 runs once per image: the bar's total says so (it
    said 2 batches, then counted to 8)."""
    from vopt.pipeline.runner import build
    from vopt.recipe.resolve import load_recipe

    recipe = write_recipe(
        {
            "name": "static-validate",
            "model": tiny_model("resnet"),
            "export": {"parity_samples": 2, "dynamic_batch": False},
            "compile": {"target": "cpu"},
            "validate": {"samples": 8, "batch": 4},
        }
    )
    reporter = Recording()
    result = build(load_recipe(recipe), tmp_path / "out", reporter=reporter)
    assert result.manifest["artifact"]["io"]["inputs"][0]["shape"][0] == 1
    total, advanced = next(v for k, v in reporter.bars.items() if k.startswith("validate on "))
    assert total == advanced == 8


@pytest.mark.slow
def test_build_log_carries_no_third_party_bars_or_warnings_only_vopt_summaries(write_recipe, tmp_path):
    """A tiny Data2Vec-vision (relative position bias: onnxsim cannot fold 210 of its nodes) to OpenVINO int8
    (NNCF draws progress bars), run as CI runs it: stdout and stderr piped."""
    recipe = write_recipe(
        {
            "name": "d2v-openvino-int8",
            "model": {
                "source": "hf",
                "id": "facebook/data2vec-vision-base",
                "weights": "random",
                "task": "image-classification",
                "config": {
                    "model_type": "data2vec-vision",
                    "hidden_size": 32,
                    "num_hidden_layers": 2,
                    "num_attention_heads": 2,
                    "intermediate_size": 64,
                    "image_size": 32,
                    "patch_size": 8,
                    "use_relative_position_bias": True,
                    "num_labels": 10,
                },
                "input": {"shape": [1, 3, 32, 32]},
            },
            "export": {"simplify": True, "parity_samples": 2},
            "quantize": {
                "precision": "int8",
                "calibration": {"samples": 16},
                "check": {"samples": 4, "benchmark": False},
            },
            "compile": {"target": "openvino", "precision": "int8"},
            "validate": {"samples": 8, "batch": 4},
        }
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("VOPT_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(tmp_path / "out"), "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads(proc.stdout)  # stdout is the JSON and nothing else
    assert manifest["recipe"]["name"] == "d2v-openvino-int8"
    log = proc.stderr
    assert not any(c in log for c in BAR_CHARS), log  # NNCF's rich bars, tqdm's blocks
    assert "%|" not in log and "it/s]" not in log
    lines = log.splitlines()
    assert not [ln for ln in lines if ln.startswith("WARNING: failed to run")], log  # onnxsim's raw lines
    assert not [ln for ln in lines if ":nncf:" in ln.split(" ")[0]], log
    onnxsim = [ln for ln in lines if ln.startswith("warning: onnxsim: ")]
    assert len(onnxsim) == 1, log
    count = int(onnxsim[0].split()[2])
    assert count > 50 and "'failed to run' warnings (first: WARNING: failed to run \"" in onnxsim[0]
    # every line is vopt's: a header, stage lines, warnings and notes, the summary
    ours = ("vopt build", "  ", "warning: ", "note: ", "quantize", "built ")
    assert all(ln.startswith(ours) for ln in lines if ln.strip()), [
        ln for ln in lines if not ln.startswith(ours)
    ]
