"""Values that `vopt check` accepted and that failed later, or never (issue 29): each is now a one-line recipe
error with file:line at `vopt check`, exit 2. Run through the real CLI in process."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

BASE = """\
name: t
model:
  source: hf
  id: tiny-resnet
  family: resnet
  weights: random
  config: {num_channels: 3, embedding_size: 8, hidden_sizes: [8], depths: [1]}
  input: {shape: [1, 3, 32, 32]}
compile:
  target: cpu
"""  # 10 lines: what a case appends starts at line 11


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # messages show paths relative to the working directory


def check(cli, tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "r.yaml"
    path.write_text(text)
    res = cli("check", str(path))
    assert "Traceback" not in res.output and "internal error" not in res.output, res.output
    return res.exit_code, res.output


def assert_refused(cli, tmp_path: Path, text: str, line: int, key: str, says: str) -> None:
    code, out = check(cli, tmp_path, text)
    assert code == 2, out
    problems = [ln.strip() for ln in out.splitlines()[1:] if ln.strip()]
    # one line per bad value (three bad means are three lines), each at the value's file:line
    assert problems and all(p.startswith(f"r.yaml:{line}: ") for p in problems), out
    assert problems[0].startswith(f"r.yaml:{line}: {key}: "), out
    assert re.search(says, problems[0]), out


@pytest.mark.parametrize(
    ("section", "line", "key", "says"),
    [
        # 1e308 is finite for pydantic; normalized inputs became -inf and the exported model's outputs NaN
        (
            "preprocess:\n  mean: [1e308, 1e308, 1e308]\n",
            12,
            "preprocess.mean.0",
            "less than or equal to 10000",
        ),
        (
            "preprocess:\n  std: [1e308, 1e308, 1e308]\n",
            12,
            "preprocess.std.0",
            "less than or equal to 10000",
        ),
        ("preprocess:\n  scale: 1e308\n", 12, "preprocess.scale", "less than or equal to 10000"),
        ("preprocess:\n  mean: [-1e308]\n", 12, "preprocess.mean.0", "greater than or equal to -10000"),
    ],
    ids=["mean-1e308", "std-1e308", "scale-1e308", "mean-minus-1e308"],
)
def test_huge_normalization_is_refused_at_check(cli, tmp_path, section, line, key, says):
    assert_refused(cli, tmp_path, BASE + section, line, key, says)


@pytest.mark.parametrize(
    ("values", "key"),
    [("mean: [0.5, 0.5]", "preprocess.mean"), ("std: [0.2, 0.2, 0.2, 0.2]", "preprocess.std")],
    ids=["mean-of-2", "std-of-4"],
)
def test_normalization_of_the_wrong_length_is_refused_at_check(cli, tmp_path, values, key):
    """Images are read as RGB: 2 or 4 values failed numpy's broadcast at export."""
    assert_refused(cli, tmp_path, BASE + f"preprocess:\n  {values}\n", 12, key, "one per RGB channel")


@pytest.mark.parametrize("std", ["[0, 0.2, 0.2]", "[0.0]", "[1e-9]"], ids=["zero-in-three", "zero", "1e-9"])
def test_a_zero_or_vanishing_std_is_refused_at_check(cli, tmp_path, std):
    assert_refused(
        cli,
        tmp_path,
        BASE + f"preprocess:\n  std: {std}\n",
        12,
        "preprocess.std.0",
        r"greater than or equal to 0\.0001",
    )


@pytest.mark.parametrize(
    ("size", "key"),
    [
        ("[0, 0]", "export.camera_size.0"),
        ("[-1, -1]", "export.camera_size.0"),
        ("[1000000000000, 224]", "export.camera_size.0"),
    ],
    ids=["zeros", "negative", "10^12"],
)
def test_camera_size_out_of_range_is_refused_at_check(cli, tmp_path, size, key):
    text = BASE + f"export:\n  embed_preprocessing: true\n  camera_size: {size}\n"
    assert_refused(cli, tmp_path, text, 13, key, "(greater|less) than or equal to")


def test_parity_samples_past_one_batch_is_refused_at_check(cli, tmp_path):
    """100,000 was accepted and grew past 2.5 GB: parity loads all its samples as one batch."""
    assert_refused(
        cli,
        tmp_path,
        BASE + "export:\n  parity_samples: 100000\n",
        12,
        "export.parity_samples",
        "less than or equal to 64",
    )


def test_a_model_type_transformers_lacks_is_refused_at_check(cli, tmp_path):
    """`vopt check` said ok and `vopt build` stopped at load with exit 2."""
    text = BASE.replace("config: {num_channels: 3,", "config: {model_type: resnet_v9, num_channels: 3,")
    code, out = check(cli, tmp_path, text)
    assert code == 2, out
    line = next(ln.strip() for ln in out.splitlines() if "resnet_v9" in ln)
    assert line.startswith("r.yaml:7: model.config.model_type: transformers "), out
    assert "has no model type 'resnet_v9'" in line and "did you mean" in line, out


def test_the_model_type_a_family_implies_is_checked_too(cli, tmp_path, monkeypatch):
    """No model_type in the config: the hf source builds the family's first one. A family written for a
    transformers that has a model type this one lacks is named at the `family:` line."""
    from vopt.models.families.resnet import ResNet

    monkeypatch.setattr(ResNet, "model_types", ("resnet_from_the_future",))
    code, out = check(cli, tmp_path, BASE)
    assert code == 2, out
    line = next(ln.strip() for ln in out.splitlines() if "resnet_from_the_future" in ln)
    assert line.startswith("r.yaml:5: model.family: transformers "), out
    assert "(family 'resnet' builds it)" in line, out


def test_model_types_are_read_without_importing_transformers_and_match_it():
    """`vopt check` reads transformers' source for its model types (importing it imports torch, seconds);
    what it reads is exactly CONFIG_MAPPING."""
    import subprocess
    import sys

    probe = (
        "import sys; from vopt.models.hf_types import installed_model_types as f; "
        "print(len(f()), 'transformers' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.split()
    from transformers import CONFIG_MAPPING

    from vopt.models.hf_types import installed_model_types

    assert installed_model_types() == frozenset(CONFIG_MAPPING.keys())
    assert out == [str(len(CONFIG_MAPPING.keys())), "False", "False"]


def test_real_bounds_still_check(cli, tmp_path):
    """The contracts real recipes use pass: ImageNet in pixel units, one value for all channels, a camera
    frame, the most parity samples, a model type transformers has."""
    text = (
        BASE.replace("config: {num_channels: 3,", "config: {model_type: resnet, num_channels: 3,")
        + "preprocess: {mean: [123.675, 116.28, 103.53], std: [58.395, 57.12, 57.375], scale: 1.0}\n"
        + "export: {embed_preprocessing: true, camera_size: [480, 640], parity_samples: 64}\n"
    )
    code, out = check(cli, tmp_path, text)
    assert code == 0, out
    code, out = check(cli, tmp_path, BASE + "preprocess: {mean: [0.5], std: [0.5]}\n")
    assert code == 0, out
