"""webgpu/webnn artifacts run in headless Chromium (onnxruntime-web) and compared with PyTorch.

All tests here share one browser per process (vopt.runtimes.browser.shared_session) and run on one
xdist worker (xdist_group), so Chromium starts once for the module. They must not skip in CI:
`make test` installs Chromium and the npm packages first (make browser-deps).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_model

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


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    """Build once per module, reuse across tests: name -> (manifest, build dir)."""
    from typer.testing import CliRunner

    from vopt.cli.app import make_app

    root = tmp_path_factory.mktemp("web-builds")
    app, runner, done = make_app(), CliRunner(), {}

    def build(name: str, recipe: dict) -> tuple[dict, Path]:
        if name not in done:
            import yaml

            path = root / f"{name}.yaml"
            path.write_text(yaml.safe_dump({"name": name, **recipe}, sort_keys=False))
            result = runner.invoke(
                app,
                [
                    "build",
                    str(path),
                    "--out",
                    str(root / "out"),
                    "--json",
                    "--cache-dir",
                    str(root / "cache"),
                ],
                catch_exceptions=False,
            )
            assert result.exit_code == 0, result.output
            done[name] = (json.loads(result.stdout), root / "out" / name)
        return done[name]

    return build


def _browser_recipe(family: str, precision: str, target: str = "webgpu", gates: dict | None = None) -> dict:
    return {
        "model": tiny_model(family),
        "compile": {"target": target, "precision": precision},
        "validate": {
            "samples": 4,
            "runtime": "browser",
            "gates": gates or {"cosine": ">=0.9999", "max_abs_diff": "<1e-3"},
        },
    }


def _assert_matches_torch(manifest: dict, ep: str, max_abs: float = 1e-4) -> dict:
    entry = manifest["validation"]["browser"]["eps"][ep]
    assert entry["status"] == "ok", entry
    logits = entry["metrics"]["logits"]
    assert logits["max_abs_diff"] < max_abs
    assert logits["cosine"] > 0.9999
    assert (
        logits["centered_cosine"] > 0.9999
    )  # outputs really vary across the images: raw cosine alone is not enough
    assert entry["timing"]["runs"] == 4 and entry["timing"]["median_run_ms"] > 0
    return entry


@pytest.mark.parametrize("family", ["resnet", "vit"])
def test_web_fp32_runs_on_webgpu_and_wasm_and_matches_torch(builds, family):
    manifest, out = builds(f"web-{family}-fp32", _browser_recipe(family, "fp32"))
    webgpu = _assert_matches_torch(manifest, "webgpu")
    _assert_matches_torch(manifest, "wasm")
    assert webgpu["runtime_info"]["adapter"]["architecture"] == "swiftshader"
    placement = webgpu["runtime_info"]["placement"]  # ORT's own log of which EP took each node
    compute = {
        "Conv",
        "MatMul",
        "Gemm",
        "Softmax",
        "LayerNormalization",
        "Erf",
        "MaxPool",
        "GlobalAveragePool",
    }
    assert not compute & set(placement.get("ops_off_ep", {})), placement
    if family == "resnet":
        assert placement["nodes_off_ep"] == 0, placement
    # ORT keeps the dynamic-batch shape arithmetic (Gather/Concat/Unsqueeze on shapes) on CPU on purpose
    else:
        assert set(placement["ops_off_ep"]) <= {
            "Gather",
            "Slice",
            "Concat",
            "Unsqueeze",
            "Squeeze",
            "Shape",
            "Cast",
            "Equal",
            "Where",
        }, placement
    assert manifest["validation"]["reference_spread"]["logits"] < 0.999  # the reference depends on the input
    assert manifest["validation"]["browser"]["eps"]["webnn"]["status"] == "unavailable"
    gates = {g["metric"]: g for g in manifest["validation"]["gates"]}
    assert gates["webgpu/cosine"]["passed"] and gates["wasm/cosine"]["passed"]
    # one self-contained file, its ops all in the WebGPU EP's table, vopt metadata inside
    import onnx

    compile_report = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]
    assert compile_report["ops"]["all_supported"], compile_report["ops"]["fallback_ops"]
    assert [p.name for p in out.iterdir() if p.suffix in (".data", ".bin")] == []
    proto = onnx.load(str(out / "model.onnx"), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["vopt.target"] == "webgpu" and meta["vopt.precision"] == "fp32"
    report = (out / "report.md").read_text()  # the per-EP results reach the report, not only the manifest
    assert "In headless Chromium" in report and "| webgpu | ok |" in report and "| wasm | ok |" in report


def test_web_int8_qdq_runs_on_webgpu_with_quantize_nodes_reported_on_cpu(builds):
    recipe = _browser_recipe("resnet", "int8", gates={"cosine": ">=0.98"})
    # one int8 path: the quantize stage makes the QDQ model (webgpu's int8_scheme, ort-qdq), compile keeps it
    recipe["quantize"] = {"precision": "int8", "calibration": {"samples": 16}, "check": {"benchmark": False}}
    manifest, _ = builds("web-resnet-int8", recipe)
    static = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]["ops"]
    assert set(static["fallback_ops"]) == {"QuantizeLinear"}  # not in the WebGPU EP's table
    assert any("would run on wasm/CPU" in w for w in manifest["warnings"])
    eps = manifest["validation"]["browser"]["eps"]
    for ep in ("webgpu", "wasm"):
        assert eps[ep]["status"] == "ok" and eps[ep]["worst_cosine"] > 0.98
        assert eps[ep]["worst_max_abs_diff"] > 1e-4  # really quantized: not the fp32 model
    runtime = eps["webgpu"]["runtime_info"]["placement"]
    assert set(runtime["ops_off_ep"]) == {"QuantizeLinear"}  # the runtime agrees with the static check
    assert runtime["by_ep"]["WebGpuExecutionProvider"]["Conv"] > 0


def test_web_fp16_runs_on_wasm_and_is_unverifiable_on_this_webgpu_adapter(builds):
    recipe = _browser_recipe("resnet", "fp16", gates={"cosine": ">=0.999"})
    del recipe["compile"]["precision"]  # fp16 is the webgpu default
    manifest, out = builds("web-resnet-fp16", recipe)
    import onnx

    proto = onnx.load(str(out / "model.onnx"))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in proto.graph.initializer)
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
    eps = manifest["validation"]["browser"]["eps"]
    assert eps["webgpu"]["status"] == "unverifiable"
    assert (
        "not verifiable on this adapter" in eps["webgpu"]["reason"]
        and "shader-f16" in eps["webgpu"]["reason"]
    )
    assert "metrics" not in eps["webgpu"]
    assert not any(g["metric"].startswith("webgpu/") for g in manifest["validation"]["gates"])  # never a pass
    wasm = eps["wasm"]["metrics"]["logits"]
    assert eps["wasm"]["status"] == "ok" and wasm["cosine"] > 0.999 and 0 < wasm["max_abs_diff"] < 0.05


def test_web_webnn_static_shapes_checked_on_wasm(builds):
    manifest, out = builds("web-resnet-webnn", _browser_recipe("resnet", "fp32", target="webnn"))
    import onnx

    proto = onnx.load(str(out / "model.onnx"))
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 64, 64] and not any(d.dim_param for d in dims)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["vopt.web.freeDimensionOverrides"]) == {"batch": 1}
    compile_report = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]
    assert compile_report["ops"]["ep"] == "webnn" and compile_report["ops"]["all_supported"]
    eps = manifest["validation"]["browser"]["eps"]
    assert eps["webnn"]["status"] == "unavailable" and "checked on wasm" in eps["webnn"]["reason"]
    _assert_matches_torch(manifest, "wasm")


def test_web_verify_catches_a_wrong_model(builds, cli, tmp_path):
    import onnx

    manifest, out = builds("web-resnet-fp32", _browser_recipe("resnet", "fp32"))
    good = cli("verify", out, "--browser", "--ep", "wasm", "--json")  # the build already checked webgpu
    assert good.exit_code == 0, good.output
    report = json.loads(good.stdout)
    assert report["reference"].startswith("PyTorch model of build")
    assert report["verified_eps"] == ["wasm"]
    assert report["eps"]["wasm"]["max_abs_diff"] < 1e-4

    # The same graph with one conv's weights scaled: a plausible-looking but wrong artifact.
    proto = onnx.load(str(out / "model.onnx"))
    conv_weights = {n.input[1] for n in proto.graph.node if n.op_type == "Conv"}
    init = next(t for t in proto.graph.initializer if t.name in conv_weights)
    w = onnx.numpy_helper.to_array(init)
    init.CopyFrom(onnx.numpy_helper.from_array((w * -1.0).astype(np.float32), init.name))
    wrong = tmp_path / "wrong.onnx"
    onnx.save(proto, str(wrong))
    bad = cli("verify", wrong, "--browser", "--reference", out, "--ep", "wasm", "--ep", "webgpu", "--json")
    assert bad.exit_code == 3, bad.output
    report = json.loads(bad.stdout)
    assert report["status"] == "failed"
    for ep in ("wasm", "webgpu"):
        assert report["eps"][ep]["status"] == "ok" and not report["eps"][ep]["passed"]
        assert report["eps"][ep]["cosine"] < 0.999
    assert "does not match the reference" in bad.output


def test_web_session_options_travel_with_the_artifact_and_reach_the_webgpu_ep(builds):
    """preferred_layout is recorded in the artifact's metadata and applied by vopt's browser runner on WebGPU
    (and not on wasm, which has no such option); cold start (session + first run) is reported per EP."""
    recipe = _browser_recipe("resnet", "fp32")
    recipe["compile"]["preferred_layout"] = "NCHW"
    manifest, out = builds("web-layout", recipe)
    eps = manifest["validation"]["browser"]["eps"]
    webgpu = _assert_matches_torch(manifest, "webgpu")
    assert webgpu["runtime_info"]["session_options"] == {"preferredLayout": "NCHW"}
    assert eps["wasm"]["runtime_info"]["session_options"] == {}
    for entry in (webgpu, eps["wasm"]):
        t = entry["timing"]
        assert t["cold_start_ms"] == pytest.approx(t["load_ms"] + t["first_run_ms"], abs=0.01)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx")).metadata_props}
    assert json.loads(meta["vopt.web.session_options"]) == {"ep": "webgpu", "preferredLayout": "NCHW"}


def _one_op_model(path: Path, op: str, *, domain: str = "", ir_version: int = 8, second_input: bool = False):
    import onnx
    from onnx import TensorProto, helper

    inputs = ["r", "r"] if second_input else ["r"]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"], name="/pre/Relu"),
        helper.make_node(op, inputs, ["y"], name=f"/blk/{op}", domain=domain),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )
    opsets = [helper.make_opsetid("", 17)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = ir_version
    onnx.save(model, str(path))
    return path


def test_web_session_refusal_of_the_whole_model_is_not_blamed_on_a_node(tmp_path):
    """onnxruntime-web refuses a newer IR version than it knows: vopt's diagnosis (a settings-only probe in
    the same browser) says the model is refused, and names no node."""
    from vopt.errors import BuildError
    from vopt.runtimes.browser import runner

    path = _one_op_model(tmp_path / "ir14.onnx", "Relu", ir_version=14)
    with pytest.raises(BuildError) as err:
        runner(path, ep="wasm")
    assert "onnxruntime-web (wasm) rejected the graph" in str(err.value)
    assert "Unsupported model IR version: 14" in str(err.value)
    assert "/mnt/" not in str(err.value)  # the wasm build machine's source path is dropped
    assert any("refuses the model before any node is placed" in line for line in err.value.lines)


def test_web_run_failure_names_the_node_and_its_op(tmp_path):
    """A kernel that fails at run time is named with its op type (com.microsoft.CDist wants 2-D inputs)."""
    from vopt.errors import BuildError
    from vopt.runtimes.browser import runner

    path = _one_op_model(tmp_path / "cdist.onnx", "CDist", domain="com.microsoft", second_input=True)
    run = runner(path, ep="wasm")
    try:
        with pytest.raises(BuildError) as err:
            run.run({"x": np.ones((1, 3, 8, 8), np.float32)})
    finally:
        run.close()
    assert "onnxruntime-web (wasm) failed to run" in str(err.value)
    assert err.value.lines == ["in node /blk/CDist (com.microsoft.CDist)"]


def test_web_profile_reads_onnxruntime_web_kernel_times_in_the_build_and_the_cli(builds, cli):
    """`benchmark.profile` on a webgpu build, and `vopt profile` on its directory, read onnxruntime-web's own
    profiler (its wasm build prints the events to the page console) and show the table and the chart."""
    recipe = {
        **_browser_recipe("resnet", "fp32"),
        "benchmark": {"batch_sizes": [1], "iterations": 3, "warmup": 1, "baseline": False, "profile": True},
    }
    manifest, out = builds("web-resnet-profile", recipe)
    p = manifest["benchmark"]["profile"]
    assert p["status"] == "ok", p
    assert p["runtime"].startswith("onnxruntime-web") and "wasm" in p["runtime"]
    assert p["ops"] > 5 and any(r["op_type"] == "Conv" for r in p["by_op_type"])
    assert sum(r["ms"] for r in p["by_op_type"]) == pytest.approx(p["op_ms"], rel=0.02)
    assert p["op_ms"] > 0
    report = (out / "report.md").read_text()
    assert "## Where the time goes" in report and "onnxruntime-web" in report
    assert (out / "plots" / "op_time.png").stat().st_size > 1000

    result = cli("profile", out, "--runs", "3", "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)["profile"]
    assert shown["runtime"].startswith("onnxruntime-web") and shown["ops"] == p["ops"]


def test_web_graph_capture_replays_on_gpu_buffers_and_matches_torch(builds):
    """`graph_capture: true` reaches the WebGPU EP (enableGraphCapture); the runner then feeds GPU buffers on
    ORT's own device, written in place on every run, and the replayed graph still matches PyTorch on all four
    images (a replay that kept the first image's input would not). Every run used the first run's buffer
    handle: onnxruntime-web releases it after each run, and the capture run once read it released (CI failed
    in createBindGroup) until the runner held a registration of its own."""
    recipe = _browser_recipe("resnet", "fp32")
    recipe["compile"]["graph_capture"] = True
    manifest, _ = builds("web-graph-capture", recipe)
    webgpu = _assert_matches_torch(manifest, "webgpu")
    assert webgpu["runtime_info"]["session_options"] == {"enableGraphCapture": True}
    assert webgpu["runtime_info"]["input_location"] == "gpu-buffer"
    assert webgpu["runtime_info"]["gpu_input_rebinds"] == 0
    assert webgpu["runtime_info"]["placement"]["nodes_off_ep"] == 0  # capture needs every node on WebGPU
    wasm = manifest["validation"]["browser"]["eps"]["wasm"]
    assert wasm["runtime_info"]["input_location"] == "cpu" and wasm["runtime_info"]["session_options"] == {}


def test_web_postprocessed_detr_matches_pytorch_plus_numpy(builds):
    """DETR with its post-processing in the graph (boxes, scores, labels; int64 labels) in onnxruntime-web."""
    recipe = {
        "model": tiny_model("detr"),
        "export": {"postprocess": True, "max_detections": 20, "parity_samples": 2},
        "compile": {"target": "webgpu", "precision": "fp32"},
        "validate": {"samples": 3, "score_threshold": 0.05, "gates": {"box_agreement": ">=0.99"}},
    }
    manifest, _ = builds("web-detr-post", recipe)
    assert manifest["validation"]["runtime"] == "browser-wasm"
    names = [o["name"] for o in manifest["artifact"]["io"]["outputs"]]
    assert names == ["boxes", "scores", "labels", "num_detections"]
    tm = manifest["validation"]["task_metrics"]
    assert tm["scoring"] == "in-graph post-processing"
    assert tm["reference_detections"] > 0 and tm["box_agreement"] >= 0.99, tm


def test_web_embedded_preprocessing_takes_raw_uint8_pixels_and_matches_the_float_pipeline(builds):
    """`export.embed_preprocessing` for the browser: the page feeds uint8 NHWC pixels (what a canvas gives),
    on WebGPU and wasm, and both match PyTorch on the float pipeline."""
    recipe = _browser_recipe("resnet", "fp32", gates={"cosine": ">=0.9999"})
    recipe["export"] = {"embed_preprocessing": True}
    manifest, _ = builds("web-embedded", recipe)
    inp = manifest["artifact"]["io"]["inputs"][0]
    assert inp["dtype"] == "uint8" and inp["shape"][1:] == [64, 64, 3]
    for ep in ("webgpu", "wasm"):
        _assert_matches_torch(manifest, ep)


def test_web_yolo_with_nms_in_the_graph_matches_pytorch_plus_ultralytics_nms(builds):
    """YOLO11n (random weights, vopt's sane init) with ONNX NonMaxSuppression in the graph for WebGPU, fp32:
    onnxruntime-web runs the NMS tail on wasm (not in the WebGPU EP's table, and the build says so), and the
    boxes match PyTorch plus Ultralytics' own non_max_suppression. (fp16 weights, the recipe's, move the
    random-weight model's near-threshold boxes: 0.89 measured, so this checks the graph at fp32.)"""
    from vopt.models.ultralytics_compat import INSTALL, available

    if not available():
        pytest.skip(f"needs Ultralytics: {INSTALL}")
    recipe = {
        "model": {
            "source": "ultralytics",
            "id": "yolo11n.yaml",
            "weights": "random",
            "input": {"shape": [1, 3, 320, 320], "name": "images"},
        },
        "export": {"nms": True, "score_threshold": 0.25, "max_detections": 100, "parity_samples": 2},
        "compile": {"target": "webgpu", "precision": "fp32"},
        "validate": {"runtime": "browser", "samples": 8, "score_threshold": 0.25},
    }
    manifest, _ = builds("web-yolo-nms", recipe)
    names = [o["name"] for o in manifest["artifact"]["io"]["outputs"]]
    assert names == ["boxes", "scores", "labels", "num_detections"]
    fallback = next(s for s in manifest["steps"] if s["stage"] == "compile")["report"]
    assert "NonMaxSuppression" in json.dumps(fallback)
    wasm = manifest["validation"]["browser"]["eps"]["wasm"]
    tm = wasm["task_metrics"]
    assert tm["reference_detections"] >= 20 and tm["box_agreement"] >= 0.99, tm
    assert tm["box_mean_iou"] >= 0.999 and tm["map50_95_vs_reference"] >= 0.99, tm
