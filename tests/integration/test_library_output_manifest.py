"""What libraries print while vopt works is summarised as one line per source (vopt/cli/capture.py): the
summary reaches the step's report and the manifest, and a cached rebuild says it again. `vopt profile` runs
under the same capture (tests/unit/test_progress_output.py has `captured` on its own)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import yaml

# A model factory that talks the way model packages do: a print on stdout (efficientnet-lite's "Loaded
# pretrained weights"), a Python warning line on stderr, and a line from native code on fd 2.
FACTORY = """
import os
import sys

import torch


def build():
    print("Loaded pretrained weights for noisy-net")
    print("/site-packages/noisy/model.py:7: UserWarning: noisy-net is a test model", file=sys.stderr)
    os.write(2, b"[ WARNING ] native code wrote this\\n")
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(), torch.nn.Linear(8, 10)
    )
"""


def _vopt(*args: str, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VOPT_PROGRESS": "0"}
    env.pop("VOPT_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "vopt", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_library_output_reaches_the_manifest_and_a_cached_rebuild_and_profile_captures_it(tmp_path):
    (tmp_path / "noisy_factory.py").write_text(FACTORY)
    recipe = tmp_path / "noisy.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "noisy",
                "model": {
                    "source": "python",
                    "arch": "noisy_factory:build",
                    "input": {"shape": [1, 3, 32, 32]},
                },
                "export": {"parity_samples": 2},
                "compile": {"target": "cpu"},
                "validate": {"samples": 2},
            }
        )
    )
    out = tmp_path / "out"
    first = _vopt("build", str(recipe), "--out", str(out), "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    manifest = json.loads(first.stdout)
    load = next(s for s in manifest["steps"] if s["stage"] == "load")["report"]
    assert load["library_output"] == [
        "library: 1 line of output (first: Loaded pretrained weights for noisy-net); --debug shows them",
        "python: 1 warning (first: /site-packages/noisy/model.py:7: UserWarning: noisy-net is a test model); "
        "--debug shows them",
        "openvino: 1 warning (first: [ WARNING ] native code wrote this); --debug shows them",
    ]
    # warning-level lines are the step's warnings, and so the manifest's
    assert [w for w in load["warnings"] if w.startswith(("python: ", "openvino: "))] == load[
        "library_output"
    ][1:]
    assert "load: python: 1 warning (first: /site-packages/noisy/model.py:7" in " ".join(manifest["warnings"])
    # every step that built the model from its factory (load, and export and validate from the cache) has
    # its own share, said once on the terminal as vopt's lines; the raw lines never reach it
    noisy = [s["stage"] for s in manifest["steps"] if "library_output" in s["report"]]
    assert noisy == ["load", "export", "validate"]
    log = first.stderr.splitlines()
    assert sum(ln.startswith("warning: python: 1 warning") for ln in log) == len(noisy), first.stderr
    assert not [ln for ln in log if "noisy-net" in ln and not ln.startswith(("warning: ", "note: "))]

    again = _vopt("build", str(recipe), "--out", str(out), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "note: load: python: 1 warning (first: /site-packages/noisy/model.py:7" in again.stderr

    # vopt profile runs under the same capture: its JSON lists what was captured (here nothing: ORT is told
    # to log errors only), and stdout stays the JSON alone
    prof = _vopt("profile", str(out / "noisy"), "--runs", "2", "--json", cwd=tmp_path)
    assert prof.returncode == 0, prof.stderr
    data = json.loads(prof.stdout)
    assert data["library_output"] == [] and data["profile"]["runs"] == 2
