"""Stable Diffusion through diffusers (docs/diffusion.md): the tiny-config pipeline of recipes/sd-cpu.yaml and
sd-openvino.yaml builds end to end as four components, the denoising loop runs on the artifacts and passes the
default gates; fp16 keeps the image (PSNR >= 35 dB against PyTorch fp32) with its overflow fallback; changing
one component's section re-runs that component only; a pipeline folder loads with its own weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

pytestmark = pytest.mark.xdist_group("diffusion")
COMPONENTS = ["text_encoder", "unet", "vae_encoder", "vae_decoder"]


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory) -> Path:
    """One cache for the module: the recipes share their load and export steps."""
    return tmp_path_factory.mktemp("sd-cache")


def _build(cli, recipe: Path, out: Path) -> dict:
    res = cli("build", recipe, "--out", out, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def _check_pipeline(m: dict, min_psnr: float) -> dict:
    v = m["validation"]
    assert v["status"] == "ok" and list(v["components"]) == COMPONENTS
    tm = v["task_metrics"]
    assert tm["psnr_db"] >= min_psnr and tm["ssim"] > 0.99 and tm["latent_cosine"] > 0.999, tm
    assert tm["tiled_psnr_db"] >= min_psnr, tm  # the dynamic-size decoder, tile by tile, against PyTorch's
    gates = {g["metric"]: g for g in v["gates"]}
    assert {"psnr_db", "ssim", "latent_cosine"} <= set(gates) and all(g["passed"] for g in gates.values())
    assert v["pipeline"]["settings"]["scheduler"] == "dpm++" and v["pipeline"]["settings"]["steps"] == 4
    return v


@pytest.mark.parametrize("recipe", ["sd-cpu", "sd-openvino"])
def test_recipe_builds_and_passes_its_default_gates(recipe, cli, tmp_path, shared_cache, monkeypatch):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    out = tmp_path / "out"
    m = _build(cli, REPO / "recipes" / f"{recipe}.yaml", out)
    art = m["artifact"]
    assert art["format"] == "components" and list(art["components"]) == COMPONENTS
    index = json.loads((out / recipe / "components.json").read_text())
    for name in COMPONENTS:  # one folder per component, the way the runtime loads it
        assert (out / recipe / index["components"][name]["path"]).exists()
        assert index["components"][name]["path"].startswith(f"{name}/")
    v = _check_pipeline(m, 60.0)  # fp32 on ORT / OpenVINO against PyTorch: equal to float rounding
    assert v["first_drift"] is None
    assert all(p["worst_cosine"] > 0.9999 for p in v["components"].values())
    # the UNet was checked on what the loop fed it: first, middle and last steps, both guidance halves
    export = next(s for s in m["steps"] if s["stage"] == "export")
    assert export["report"]["components"]["vae_decoder"]["parity"]["worst_cosine"] > 0.9999


def test_fp16_keeps_the_image_and_lists_the_nodes_kept_fp32(
    cli, tmp_path, shared_cache, monkeypatch, write_recipe
):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    recipe = write_recipe(
        {
            "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
            "name": "sd-fp16",
            "compile": {"precision": "fp16"},
        }
    )
    m = _build(cli, recipe, tmp_path / "out")
    assert {c["meta"]["precision"] for c in m["artifact"]["components"].values()} == {"fp16"}
    _check_pipeline(m, 35.0)
    compile_step = next(s for s in m["steps"] if s["stage"] == "compile")
    fp16 = compile_step["report"]["components"]["text_encoder"]["fp16"]
    # CLIP's causal mask (-inf / float min) is recorded beyond fp16: the nodes reading it stay fp32, and why
    assert fp16["kept_fp32_nodes"] and "recorded calls of text_encoder" in fp16["ranges"]
    assert any("Softmax" in n and "> 8188" in why for n, why in fp16["kept_fp32_nodes"].items())
    report = (tmp_path / "out" / "sd-fp16" / "report.md").read_text()
    assert "nodes kept in fp32" in report and "self_attn/Softmax" in report  # the report says which and why


def test_changing_one_component_rebuilds_only_it(cli, tmp_path, shared_cache, monkeypatch, write_recipe):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    base = {"extends": [str(REPO / "recipes" / "sd-cpu.yaml")], "name": "sd-cache", "validate": None}
    _build(cli, write_recipe(base), tmp_path / "out")
    changed = {**base, "components": {"unet": {"export": {"simplify": False}}}}
    m = _build(cli, write_recipe(changed, "changed.yaml"), tmp_path / "out")
    steps = {
        s["stage"]: s["key_material"]["components"] for s in m["steps"] if s["stage"] in ("export", "compile")
    }
    for stage, parts in steps.items():
        assert not parts["unet"]["cached"], stage
        for other in ("text_encoder", "vae_encoder", "vae_decoder"):
            assert parts[other]["cached"], (stage, other)


def test_a_pipeline_folder_loads_with_its_own_weights(cli, tmp_path, monkeypatch, write_recipe):
    """A diffusers pipeline folder (save_pretrained layout, model_index.json) with `weights: pretrained`."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    family = yaml.safe_load((REPO / "recipes" / "families" / "stable_diffusion.yaml").read_text())
    cfg = family["model"]["config"]
    folder = tmp_path / "pipe"
    torch.manual_seed(7)
    CLIPTextModel(CLIPTextConfig(**cfg["text_encoder"])).save_pretrained(folder / "text_encoder")
    unet = UNet2DConditionModel(**cfg["unet"])
    unet.save_pretrained(folder / "unet")
    AutoencoderKL(**cfg["vae"]).save_pretrained(folder / "vae")
    DPMSolverMultistepScheduler().save_pretrained(folder / "scheduler")
    index = {
        "_class_name": "StableDiffusionPipeline",
        "text_encoder": ["transformers", "CLIPTextModel"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DPMSolverMultistepScheduler"],
    }
    (folder / "model_index.json").write_text(json.dumps(index))
    data = {
        "name": "sd-folder",
        "model": {
            "source": "diffusers",
            "id": str(folder),
            "weights": "pretrained",
            "input": {"shape": [1, 3, 32, 32]},
        },
        "compile": {"target": "cpu"},
        "validate": {"samples": 2, "pipeline": {"steps": 2, "prompts": ["a cat"]}},
    }
    m = _build(cli, write_recipe(data), tmp_path / "out")
    assert m["validation"]["task_metrics"]["psnr_db"] > 60
    # the UNet's weights are the folder's: the exported graph holds the saved conv_in kernel
    import numpy as np
    import onnx

    path = tmp_path / "out" / "sd-folder" / m["artifact"]["components"]["unet"]["file"]
    weights = [onnx.numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer]
    kernel = unet.conv_in.weight.detach().numpy()
    assert any(w.shape == kernel.shape and np.allclose(w, kernel) for w in weights)


def test_tensorrt_readiness_of_each_component(cli, tmp_path, shared_cache, monkeypatch, write_recipe):
    """What the tensorrt target checks before its builder (no GPU here): each exported component with the
    profiles the target makes from its own inputs (dynamic batch, the decoder's height and width)."""
    from vopt.core.artifact import Artifact, IOSpec, TensorSpec
    from vopt.models.families.lookup import get_family
    from vopt.models.families.stable_diffusion import COMPONENT_FAMILIES, build_component
    from vopt.recipe.sections.model import InputSpec
    from vopt.registry import get_target

    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    base = {  # the export's own graphs: ORT's basic level adds no contrib ops
        "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
        "name": "sd-trt",
        "compile": {"optimization": "basic"},
        "validate": None,
    }
    m = _build(cli, write_recipe(base), tmp_path / "out")
    cfg = yaml.safe_load((REPO / "recipes" / "families" / "stable_diffusion.yaml").read_text())["model"][
        "config"
    ]
    configs = {
        "text_encoder": cfg["text_encoder"],
        "unet": cfg["unet"],
        "vae_encoder": cfg["vae"],
        "vae_decoder": cfg["vae"],
    }
    target = get_target("tensorrt")
    settings = target.Config(target="tensorrt", precision=["fp16"])
    for name, comp in m["artifact"]["components"].items():
        examples = get_family(COMPONENT_FAMILIES[name]).example_inputs(
            build_component(name, configs[name]), [1, 3, 32, 32]
        )
        # the io the load step gives the component: concrete example sizes
        inputs = [TensorSpec(name=n, shape=["batch", *v.shape[1:]]) for n, v in examples.items()]
        loaded = Artifact(path="", format="torch-module", io=IOSpec(inputs=inputs))
        art = Artifact(
            path=str(tmp_path / "out" / "sd-trt" / comp["file"]), format="onnx", io=IOSpec(**comp["io"])
        )
        report = target.check(art, settings, InputSpec(shape=[1, 3, 32, 32]), loaded)
        assert report["ready"], (name, report["findings"])
        assert set(report["profiles"]) == set(examples)  # a profile for every dynamic input
    decoder = report["profiles"]["latent_sample"]
    assert decoder[0][2:] == [8, 8] and decoder[2][2:] == [32, 32]  # tiles from half to twice the latent
