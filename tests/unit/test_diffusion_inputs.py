"""Stable Diffusion recipes that cannot work fail at plan time, in one line that names the file and line, the
key or the component, with exit 2 and nothing in the build directory; fp16's overflow fallback keeps a node
whose recorded range is beyond fp16 in fp32."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.conftest import REPO

FAMILY = yaml.safe_load((REPO / "recipes" / "families" / "stable_diffusion.yaml").read_text())


def _pipeline_folder(root: Path, *, drop: str | None = None, extra: dict | None = None) -> Path:
    """A diffusers pipeline folder's layout (configs only: plan-time checks read no weights)."""
    cfg = FAMILY["model"]["config"]
    index = {
        "_class_name": "StableDiffusionPipeline",
        "text_encoder": ["transformers", "CLIPTextModel"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "PNDMScheduler"],
        **(extra or {}),
    }
    files = {
        "text_encoder/config.json": cfg["text_encoder"],
        "unet/config.json": cfg["unet"],
        "vae/config.json": cfg["vae"],
        "scheduler/scheduler_config.json": {"_class_name": "PNDMScheduler", "num_train_timesteps": 1000},
    }
    for rel, data in files.items():
        if drop and rel.startswith(drop + "/"):
            continue
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(data))
    (root / "model_index.json").write_text(json.dumps(index))
    return root


def _recipe(tmp_path: Path, model: dict | None = None, pipeline: dict | None = None) -> Path:
    data = {
        "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
        "name": "sd-bad",
        **({"model": model} if model else {}),
        **({"validate": {"pipeline": pipeline}} if pipeline else {}),
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _fails(cli, recipe: Path, tmp_path: Path, *needles: str) -> str:
    out = tmp_path / "out"
    res = cli("build", recipe, "--out", out)
    assert res.exit_code == 2, res.output
    error = [line for line in res.output.splitlines() if line.strip()]
    text = "\n".join(error)
    for needle in needles:
        assert needle in text, text
    assert not (out / "sd-bad").exists() and not any(out.glob(".sd-bad*"))
    return text


def test_a_folder_with_a_missing_component(cli, tmp_path):
    folder = _pipeline_folder(tmp_path / "pipe", drop="vae")
    recipe = _recipe(tmp_path, model={"id": str(folder), "weights": "pretrained"})
    _fails(cli, recipe, tmp_path, "bad.yaml:", "model.id", "component vae", "config.json is missing")


def test_a_transformer_pipeline_is_not_a_unet_pipeline(cli, tmp_path):
    folder = _pipeline_folder(
        tmp_path / "pipe", extra={"transformer": ["diffusers", "DiTTransformer2DModel"]}
    )
    recipe = _recipe(tmp_path, model={"id": str(folder), "weights": "pretrained"})
    _fails(cli, recipe, tmp_path, "bad.yaml:", "component transformer (DiTTransformer2DModel)", "UNet")


def test_a_unet_of_another_class(cli, tmp_path):
    folder = _pipeline_folder(tmp_path / "pipe", extra={"unet": ["diffusers", "UNet2DModel"]})
    recipe = _recipe(tmp_path, model={"id": str(folder), "weights": "pretrained"})
    _fails(cli, recipe, tmp_path, "component unet is a UNet2DModel", "UNet2DConditionModel")


def test_pipeline_height_that_is_not_the_unets_sample_size(cli, tmp_path):
    recipe = _recipe(tmp_path, pipeline={"height": 48})
    text = _fails(cli, recipe, tmp_path, "bad.yaml:", "validate.pipeline.height", "component unet", "32x32")
    assert "48" in text


def test_unknown_scheduler(cli, tmp_path):
    recipe = _recipe(tmp_path, pipeline={"scheduler": "dpm+"})
    _fails(
        cli, recipe, tmp_path, "bad.yaml:", "validate.pipeline.scheduler", "unknown scheduler 'dpm+'", "dpm++"
    )


@pytest.mark.parametrize("steps", [0, 10**6])
def test_step_count_out_of_range(cli, tmp_path, steps):
    recipe = _recipe(tmp_path, pipeline={"steps": steps})
    _fails(cli, recipe, tmp_path, "bad.yaml:", "validate.pipeline.steps")


def test_missing_diffusers_is_one_line_naming_the_extra(cli, tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "diffusers" else real(name, *a)
    )
    res = cli("build", REPO / "recipes" / "sd-cpu.yaml", "--out", tmp_path / "out")
    assert res.exit_code == 4, res.output
    assert "pip install 'vopt[diffusion]'" in res.output and not (tmp_path / "out" / "sd-cpu").exists()


def _overflowing_graph(path: Path) -> None:
    """y = (x * 3e4 + 1) / 3e4: the product is beyond fp16's 65504 for |x| > 2.2 (3e4 itself fits)."""
    import onnx
    from onnx import TensorProto, helper

    big = helper.make_tensor("big", TensorProto.FLOAT, [], [3e4])
    one = helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])
    nodes = [
        helper.make_node("Mul", ["x", "big"], ["scaled"], name="scale_up"),
        helper.make_node("Add", ["scaled", "one"], ["shifted"], name="shift"),
        helper.make_node("Div", ["shifted", "big"], ["y"], name="scale_down"),
        helper.make_node("Relu", ["y"], ["out"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes,
        "overflow",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 4])],
        [big, one],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def test_a_recorded_range_beyond_fp16_keeps_its_nodes_fp32(tmp_path):
    import onnx
    import onnxruntime as ort

    from vopt.quant.fp16 import convert_to_fp16
    from vopt.quant.overflow import DATA_MAX, overflow_nodes, record_ranges

    path = tmp_path / "m.onnx"
    _overflowing_graph(path)
    x = np.array([[2.0, -3.0, 0.5, 4.0]], np.float32)
    ranges = record_ranges(path, [{"x": x}])
    assert ranges["scaled"] == pytest.approx(1.2e5) and ranges["out"] == pytest.approx(4.0, rel=1e-4)
    kept = overflow_nodes(path, ranges)
    # the nodes that read or write the 3e5 tensor stay fp32, and the report says which tensor and how far
    assert set(kept) == {"scale_up", "shift", "scale_down"}, kept
    assert "scaled" in kept["scale_up"] and f"> {DATA_MAX:g}" in kept["scale_up"]

    def run(proto) -> np.ndarray:
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        return sess.run(None, {"x": x})[0]

    def dtype_of(proto, name: str) -> int:
        inferred = onnx.shape_inference.infer_shapes(proto)
        infos = [*inferred.graph.value_info, *inferred.graph.output]
        return next(v.type.tensor_type.elem_type for v in infos if v.name == name)

    plain, _ = convert_to_fp16(onnx.load(str(path)))
    safe, _ = convert_to_fp16(onnx.load(str(path)), node_block=list(kept))
    # all-fp16 stores the product as fp16, where 1.2e5 is inf (ORT's CPU kernels compute in fp32 and hide
    # it; an fp16 device does not); with the fallback it stays fp32 and the result is fp32's
    assert dtype_of(plain, "scaled") == onnx.TensorProto.FLOAT16 and np.isinf(np.float16(ranges["scaled"]))
    nodes = {n.name: n for n in safe.graph.node}
    assert nodes["shift"].input[0] == nodes["scale_up"].output[0]  # no fp16 round trip between them
    assert dtype_of(safe, nodes["scale_up"].output[0]) == onnx.TensorProto.FLOAT
    np.testing.assert_allclose(run(safe), np.maximum(x + 1 / 3e4, 0), rtol=1e-5)
    assert dtype_of(safe, "out") == onnx.TensorProto.FLOAT  # fp32 I/O
    assert [n.name for n in safe.graph.node if n.name == "relu"] == ["relu"]  # the rest is still converted


def test_tiled_decode_is_diffusers_tiled_decode():
    """The pipeline check's tiling (through any decoder call) is AutoencoderKL.tiled_decode, tile for tile."""
    import torch
    from diffusers import AutoencoderKL

    from vopt.models.families.stable_diffusion import TINY_VAE, build_component, tiled_decode

    torch.manual_seed(0)
    vae = AutoencoderKL(**TINY_VAE).eval()
    decoder = build_component("vae_decoder", TINY_VAE)
    decoder.load_state_dict(
        {k: v for k, v in vae.state_dict().items() if k.startswith(("decoder.", "post_quant"))}
    )

    def call(feeds):
        with torch.no_grad():
            return {"sample": decoder(torch.from_numpy(feeds["latent_sample"]))[0].numpy()}

    z = np.random.default_rng(0).standard_normal((1, 4, 32, 40)).astype(np.float32)  # 2x by 2.5x the tile
    facts = {"vae_scale": 2, "vae_sample_size": TINY_VAE["sample_size"]}
    with torch.no_grad():
        expected = vae.tiled_decode(torch.from_numpy(z)).sample.numpy()
    got = tiled_decode(call, z, facts)
    assert got.shape == expected.shape == (1, 3, 64, 80)
    np.testing.assert_allclose(got, expected, atol=1e-5)
