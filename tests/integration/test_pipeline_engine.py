"""The engine: cache keys invalidate exactly the downstream steps, manifests, atomic output, exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_model
from vopt.core.cache import Cache
from vopt.pipeline.plan import dry_run, make_plan
from vopt.recipe.resolve import load_recipe


def tiny_recipe(**extra):
    data = {
        "name": "tiny",
        "model": tiny_model("resnet"),
        "compile": {"target": "cpu"},
        "validate": {"samples": 6},
    }
    data.update(extra)
    return data


def stages_run(manifest: dict) -> list[str]:
    return [s["stage"] for s in manifest["steps"] if not s["cached"]]


def test_change_invalidates_exactly_downstream(write_recipe, cli, tmp_path):
    recipe = write_recipe(tiny_recipe())
    out = tmp_path / "out"
    base = json.loads(cli("build", recipe, "--out", out, "--json").stdout)
    assert stages_run(base) == ["load", "export", "compile", "validate"]
    # export config changed: load stays cached, everything after it re-runs
    m = json.loads(cli("build", recipe, "--out", out, "--json", "--set", "export.simplify=false").stdout)
    assert stages_run(m) == ["export", "compile", "validate"]
    # compile config changed: only compile and validate
    m = json.loads(cli("build", recipe, "--out", out, "--json", "--set", "compile.optimization=basic").stdout)
    assert stages_run(m) == ["compile", "validate"]
    # validate config changed: only validate
    m = json.loads(cli("build", recipe, "--out", out, "--json", "--set", "validate.samples=5").stdout)
    assert stages_run(m) == ["validate"]
    # a preprocessing change: load writes the same bytes, but the contract differs, so every step re-runs
    m = json.loads(
        cli("build", recipe, "--out", out, "--json", "--set", "preprocess.mean=[0.1, 0.2, 0.3]").stdout
    )
    assert stages_run(m) == ["load", "export", "compile", "validate"]
    assert m["artifact"]["preprocess"]["mean"] == [0.1, 0.2, 0.3]
    # back to the original: everything cached, same final artifact
    again = json.loads(cli("build", recipe, "--out", out, "--json").stdout)
    assert stages_run(again) == []
    assert again["artifact"]["sha256"] == base["artifact"]["sha256"]
    assert again["vopt_seconds"] < 2.0


def test_plan_reports_hits_and_misses(write_recipe, cli, tmp_path):
    recipe = write_recipe(tiny_recipe())
    loaded = load_recipe(recipe)
    steps, target = make_plan(loaded.recipe)
    assert [p.cached for p in dry_run(steps, target, Cache())] == [False] * 4
    assert cli("build", recipe, "--out", tmp_path / "o").exit_code == 0
    assert [p.cached for p in dry_run(steps, target, Cache())] == [True] * 4
    loaded2 = load_recipe(recipe, ["compile.optimization=basic"])
    steps2, _ = make_plan(loaded2.recipe)
    planned = dry_run(steps2, target, Cache())
    assert [(p.name, p.cached) for p in planned] == [
        ("load", True),
        ("export", True),
        ("compile", False),
        ("validate", False),
    ]
    assert planned[3].key is None  # its input is not built yet
    result = cli("plan", recipe, "--json")
    assert result.exit_code == 0
    assert [s["cached"] for s in json.loads(result.stdout)["steps"]] == [True] * 4


def test_each_step_key_covers_what_the_step_reads(write_recipe):
    """load writes the input spec's batch dim from export.dynamic_batch: it is in load's config, so its
    key."""
    from vopt.pipeline.plan import key_for

    recipe = write_recipe(tiny_recipe())
    keys = {}
    for dynamic in ("true", "false"):
        steps, target = make_plan(load_recipe(recipe, [f"export.dynamic_batch={dynamic}"]).recipe)
        load = next(s for s in steps if s.name == "load")
        assert load.config.dynamic_batch is (dynamic == "true")
        keys[dynamic] = key_for(load, None, target)
    assert keys["true"] != keys["false"]


@pytest.mark.parametrize(
    "target, option, scheme",
    [
        ("cpu", "reduce_range", None),
        ("openvino", "overflow_fix", None),
        ("openvino", "reduce_range", "ort-qdq"),
    ],
    ids=["ort-qdq", "nncf", "ort-qdq-on-openvino"],
)
def test_the_quantize_key_covers_the_host_cpu_fact_its_defaults_read(
    target, option, scheme, write_recipe, monkeypatch
):
    """On a CPU without VNNI, int8 defaults change (7-bit weights), so a cache shared with a VNNI machine
    must not serve one machine's artifact to the other: the fact is in the quantize step's key, unless
    the recipe sets the option itself."""
    from vopt.pipeline.plan import key_for
    from vopt.quant.schemes import ort_qdq

    quantize = {"precision": "int8", **({"scheme": scheme} if scheme else {})}
    recipe = write_recipe(tiny_recipe(compile={"target": target}, quantize=quantize))
    keys = {}
    for saturates in (True, False):
        monkeypatch.setattr(ort_qdq, "host_lacks_vnni", lambda s=saturates: s)
        steps, plan_target = make_plan(load_recipe(recipe).recipe)
        quant = next(s for s in steps if s.name == "quantize")
        assert quant.config.host == {"int8_saturates": saturates}
        keys[saturates] = key_for(quant, "parent", plan_target)
        value = "true" if option == "reduce_range" else "enable"
        pinned = next(
            s
            for s in make_plan(load_recipe(recipe, [f"quantize.options.{option}={value}"]).recipe)[0]
            if s.name == "quantize"
        )
        assert pinned.config.host == {}
    assert keys[True] != keys[False]


def test_manifest_contents(write_recipe, cli, tmp_path):
    recipe = write_recipe(tiny_recipe(validate={"samples": 6, "gates": {"cosine": ">=0.999"}}))
    result = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    on_disk = json.loads((tmp_path / "out" / "tiny" / "manifest.json").read_text())
    assert on_disk["artifact"]["sha256"] == m["artifact"]["sha256"]
    assert m["status"] == "ok" and m["target"] == "cpu"
    assert (
        m["precision"] == m["artifact"]["meta"]["precision"] == "fp32"
    )  # what compile labelled the artifact
    assert m["recipe"]["resolved"]["model"]["family"] == "resnet"
    assert {"torch", "onnx", "onnxruntime", "vopt"} <= set(m["tools"])
    assert m["platform"]["python"]
    for step in m["steps"]:
        assert {
            "stage",
            "key",
            "cached",
            "seconds",
            "input_sha256",
            "output_sha256",
            "config",
            "report",
        } <= set(step)
    chain = [s for s in m["steps"] if s["stage"] != "validate"]
    for prev, nxt in zip(chain, chain[1:], strict=False):
        assert nxt["input_sha256"] == prev["output_sha256"]  # lineage links up
    assert [e["stage"] for e in m["artifact"]["lineage"]] == ["load", "export", "compile"]
    assert m["artifact"]["meta"]["random_weights"] is True
    assert any("RANDOM" in w for w in m["warnings"])
    val = m["validation"]
    assert val["images"].startswith("built-in sample images")
    assert val["metrics"]["logits"]["cosine"] > 0.9999
    assert val["metrics"]["logits"]["centered_cosine"] > 0.9999
    assert val["gates"][0]["passed"] is True
    art = tmp_path / "out" / "tiny" / m["artifact"]["file"]
    assert art.is_file() and art.stat().st_size == m["artifact"]["size_bytes"]


def test_random_weights_outputs_vary_across_real_images(write_recipe, cli, tmp_path):
    """Sane random init: outputs must depend on the image, or every parity number is meaningless."""
    import numpy as np

    from vopt.core.artifact import Artifact
    from vopt.datasets.images import load_batch
    from vopt.models.resolve import family_of, load_module
    from vopt.validate.reference import torch_outputs

    recipe = write_recipe(tiny_recipe())
    m = json.loads(cli("build", recipe, "--out", tmp_path / "o", "--json").stdout)
    load_step = m["steps"][0]
    entry = Cache().get(load_step["key"])
    art: Artifact = entry.artifact
    images = load_batch(None, art.preprocess, 8)
    logits = torch_outputs(load_module(art), family_of(art), images)["logits"]
    assert np.abs(logits).max() > 1e-2  # not the collapsed ~0 outputs of transformers' init
    spread = logits.std(axis=0).mean() / (np.abs(logits).mean() + 1e-12)
    assert spread > 0.05, f"outputs barely vary across images (relative spread {spread:.4f})"
    assert m["validation"]["reference_spread"]["logits"] < 0.999


def test_gate_failure_exits_3_and_names_metric(write_recipe, cli, tmp_path):
    recipe = write_recipe(tiny_recipe(validate={"samples": 4, "gates": {"max_abs_diff": "<0"}}))
    result = cli("build", recipe, "--out", tmp_path / "out")
    assert result.exit_code == 3
    assert "max_abs_diff" in result.stderr and "needs <0" in result.stderr
    manifest = json.loads((tmp_path / "out" / "tiny" / "manifest.json").read_text())
    assert manifest["status"] == "gate_failed"


def test_typo_exits_2_with_file_line_and_no_traceback(write_recipe, cli, tmp_path):
    recipe = write_recipe({**tiny_recipe(), "exprot": {"opset": 17}})
    result = cli("build", recipe, "--json")
    assert result.exit_code == 2
    assert "did you mean `export`?" in result.stderr
    assert f"{recipe.name}:" in result.stderr or str(recipe) in result.stderr
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_unavailable_target_exits_4(write_recipe, cli, tmp_path, monkeypatch):
    from vopt.targets.cpu import CpuTarget

    monkeypatch.setattr(CpuTarget, "requires", ("surely_not_installed_module",))
    result = cli("build", write_recipe(tiny_recipe()), "--out", tmp_path / "o")
    assert result.exit_code == 4
    assert "pip install 'vopt[core]'" in result.stderr or "surely_not_installed_module" in result.stderr


def _entries(cache: Path) -> list[Path]:
    return [p for p in cache.glob("??/*") if (p / "entry.json").is_file()]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killed_mid_export_leaves_nothing_partial(write_recipe, tmp_path, sig):
    """A real `vopt build` process, stopped by the test hook after export wrote its files and before they are
    committed (no timing: the build waits on the hook until the signal comes)."""
    recipe = write_recipe({"name": "killme", "model": tiny_model("resnet"), "validate": None})
    cache, out, marker = tmp_path / "cache", tmp_path / "out", tmp_path / "paused"
    env = {**os.environ, "VOPT_CACHE_DIR": str(cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(out)]
    returncode, output = _signal_at_pause(cmd, {**env, "VOPT_TEST_PAUSE_AT": f"export:{marker}"}, marker, sig)
    assert returncode == {signal.SIGINT: 130, signal.SIGTERM: 143, signal.SIGKILL: -9}[sig], output
    assert len(_entries(cache)) == 1  # only the finished load step
    assert not out.exists() or not list(out.iterdir())
    tmp = list((cache / "tmp").iterdir())
    assert tmp == [] if sig != signal.SIGKILL else len(tmp) == 1  # SIGKILL cannot clean up: the next run does
    # The rerun resumes from the cached load step and finishes.
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "load       cached" in done.stderr
    assert (out / "killme" / "model.onnx").is_file()
    assert not any((cache / "tmp").iterdir())  # the killed run's work dir was cleaned up


def _wait_for(marker: Path, proc: subprocess.Popen | None = None, limit: float = 300) -> None:
    """Wait for the build to reach the pause point (a failsafe limit only; no timing is assumed)."""
    deadline = time.monotonic() + limit
    while not marker.exists():
        if proc is not None and proc.poll() is not None:
            pytest.fail(f"build ended before the pause point: {proc.stdout.read().decode()[-2000:]}")
        assert time.monotonic() < deadline, "the build never reached the pause point"
        time.sleep(0.01)


def _signal_at_pause(cmd: list[str], env: dict[str, str], marker: Path, sig: int) -> tuple[int, str]:
    """Start a real `vopt build`, wait until its VOPT_TEST_PAUSE_AT hook writes `marker`, send `sig`
    (process-directed, as a terminal or a CI runner sends it) and return its exit code and output."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _wait_for(marker, proc)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0].decode()
    return proc.returncode, output


def _interrupted_build(recipe, out, point, sig, marker, swallow=False):
    """A real `vopt build`, paused at `point`, then sent `sig`. Not in process: a signal to a long-lived
    pytest worker reaches whatever earlier tests left in it, and twice ended the worker instead of the
    build."""
    from types import SimpleNamespace

    marker.unlink(missing_ok=True)
    spec = f"{point}:{marker}" + (":swallow" if swallow else "")
    cmd = [sys.executable, "-m", "vopt", "build", str(recipe), "--out", str(out), "--json"]
    env = {**os.environ, "VOPT_TEST_PAUSE_AT": spec, "PYTHONUNBUFFERED": "1"}
    code, output = _signal_at_pause(cmd, env, marker, sig)
    return SimpleNamespace(exit_code=code, output=output)


def _nothing_partial(cache: Path, out: Path) -> None:
    assert not (cache / "tmp").exists() or not any((cache / "tmp").iterdir())
    assert not [p for p in cache.glob("??/.*")]  # no half-swapped entries
    assert not out.exists() or not [p for p in out.iterdir() if p.name.startswith(".")]
    for entry in _entries(cache):
        assert not list(entry.rglob("partial.tmp"))


INT8 = {"quantize": {"precision": "int8", "calibration": {"samples": 4}}, "validate": {"samples": 2}}


@pytest.mark.parametrize(
    ("point", "sig"),
    [
        ("load", signal.SIGINT),
        ("export", signal.SIGTERM),
        ("quantize", signal.SIGINT),
        ("compile", signal.SIGTERM),
        ("validate", signal.SIGINT),
        ("output", signal.SIGTERM),
    ],
)
def test_interrupt_at_every_step_exits_with_the_signal_and_resumes(
    write_recipe, cli, tmp_path, monkeypatch, _isolated_cache, point, sig
):
    recipe = write_recipe(tiny_recipe(**INT8))
    out = tmp_path / "out"
    result = _interrupted_build(recipe, out, point, sig, tmp_path / "paused")
    assert result.exit_code == 128 + sig, result.output
    assert "interrupted" in result.output
    _nothing_partial(_isolated_cache, out)
    assert not (out / "tiny").exists()
    order = ["load", "export", "quantize", "compile", "validate"]
    finished = order[: order.index(point)] if point in order else order
    m = json.loads(cli("build", recipe, "--out", out, "--json").stdout)
    assert [s["stage"] for s in m["steps"] if s["cached"]] == finished  # every finished step is reused
    assert (out / "tiny" / m["artifact"]["file"]).is_file()


def test_swallowed_interrupt_still_ends_the_build(write_recipe, cli, tmp_path, monkeypatch, _isolated_cache):
    """Library code that catches the KeyboardInterrupt (onnxsim's `except` around `import onnxruntime` did)
    cannot turn an interrupted build into a successful one."""
    recipe = write_recipe(tiny_recipe(validate=None))
    out = tmp_path / "out"
    result = _interrupted_build(recipe, out, "export", signal.SIGINT, tmp_path / "paused", swallow=True)
    assert result.exit_code == 130, result.output
    _nothing_partial(_isolated_cache, out)
    assert len(_entries(_isolated_cache)) == 1 and not (out / "tiny").exists()


def test_interrupt_mid_export_twenty_times(write_recipe, cli, tmp_path, monkeypatch, _isolated_cache):
    recipe = write_recipe(tiny_recipe(validate=None))
    out = tmp_path / "out"
    for i in range(20):
        sig = (signal.SIGINT, signal.SIGTERM)[i % 2]
        result = _interrupted_build(recipe, out, "export", sig, tmp_path / "paused")
        assert result.exit_code == 128 + sig, f"run {i}: {result.output}"
        _nothing_partial(_isolated_cache, out)
        assert len(_entries(_isolated_cache)) == 1  # the load step, reused every time
    m = json.loads(cli("build", recipe, "--out", out, "--json").stdout)
    assert [s["cached"] for s in m["steps"]] == [True, False, False]


def test_manifest_is_strict_json(write_recipe, cli, tmp_path):
    """One validation sample makes some statistics undefined: they must be null, never NaN."""
    recipe = write_recipe(tiny_recipe(validate={"samples": 1}))
    result = cli("build", recipe, "--out", tmp_path / "o", "--json")
    assert result.exit_code == 0, result.output

    def reject(token):
        raise AssertionError(f"non-standard JSON constant {token}")

    json.loads(result.stdout, parse_constant=reject)
    json.loads((tmp_path / "o" / "tiny" / "manifest.json").read_text(), parse_constant=reject)
    assert json.loads(result.stdout)["vopt_seconds"] > 0
    assert json.loads((tmp_path / "o" / "tiny" / "manifest.json").read_text())["vopt_seconds"] > 0


def test_manifest_key_material_reproduces_the_key(write_recipe, cli, tmp_path):
    from vopt.core.cache import step_key

    m = json.loads(cli("build", write_recipe(tiny_recipe()), "--out", tmp_path / "o", "--json").stdout)
    for s in m["steps"]:
        assert set(s["key_material"]) == {"vopt", "stage", "parent", "fingerprint", "tools"}
        assert step_key({**s["key_material"], "config": s["config"]}) == s["key"], s["stage"]
    assert (
        m["steps"][1]["key_material"]["parent"] is not None
        and "torch" in m["steps"][0]["key_material"]["tools"]
    )


def test_staging_left_by_a_killed_build_is_removed(write_recipe, cli, tmp_path):
    """SIGKILL while the build directory is written leaves build/.<name>.tmp-<pid>-*; the next build removes
    it."""
    from vopt.core.cache import _alive

    dead = next(pid for pid in range(4_000_000, 4_100_000) if not _alive(pid))
    out = tmp_path / "o"
    stale = out / f".tiny.tmp-{dead}-deadbeef"
    (stale / "half").mkdir(parents=True)
    result = cli("build", write_recipe(tiny_recipe(validate=None)), "--out", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["tiny"]
