"""recipes/sd-webgpu.yaml: a tiny Stable Diffusion pipeline whose four fp16 components (fp32 I/O) each run in
headless Chromium (onnxruntime-web), the whole denoising loop through the browser, against PyTorch fp32."""

from __future__ import annotations

import json

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.xdist_group("browser")]


@pytest.fixture(scope="module", autouse=True)
def _browser():
    """Start the shared browser once for the module; fail loudly (not skip) when it cannot start."""
    from vopt.runtimes import browser

    reason = browser.missing()
    assert reason is None, f"browser tests need Chromium and the npm packages (make browser-deps): {reason}"
    session = browser.shared_session()
    yield session
    session.close()


def test_every_component_runs_in_the_browser_and_the_pipeline_keeps_the_image(cli, tmp_path):
    res = cli("build", REPO / "recipes" / "sd-webgpu.yaml", "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    v = m["validation"]
    assert v["status"] == "ok"
    assert {p["runtime"] for p in v["components"].values()} == {"browser-wasm"}  # each one in Chromium
    comps = m["artifact"]["components"]
    assert {c["meta"]["precision"] for c in comps.values()} == {"fp16"}
    tm = v["task_metrics"]
    assert tm["psnr_db"] >= 35 and tm["tiled_psnr_db"] >= 35 and tm["ssim"] > 0.99, tm
    assert all(g["passed"] for g in v["gates"])
    compile_step = next(s for s in m["steps"] if s["stage"] == "compile")
    kept = compile_step["report"]["components"]["text_encoder"]["fp16"]["kept_fp32_nodes"]
    # CLIP's causal mask is beyond fp16: the nodes that read it stay fp32 in the browser too
    assert any("Softmax" in n for n in kept)
