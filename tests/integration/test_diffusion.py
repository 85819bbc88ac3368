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


def _reused(parts: dict, name: str) -> bool:
    """A component another build already made in this step: a cache hit, or a step that passes it through
    (quantize: null)."""
    return bool(parts[name].get("cached") or parts[name].get("skipped"))


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


# Fewer recorded calls than the defaults (64 calibration, 16 check): the same code, a quarter of the time.
FAST_INT8 = {"precision": "int8", "calibration": {"samples": 16}, "check": {"samples": 8, "benchmark": False}}


def test_changing_the_unets_quantization_reuses_the_text_encoder_and_vae(
    cli, tmp_path, shared_cache, monkeypatch, write_recipe
):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    base = {
        "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
        "name": "sd-int8-cache",
        "quantize": FAST_INT8,
        "validate": None,
    }
    first = _build(cli, write_recipe(base), tmp_path / "out")
    unet_first = next(s for s in first["steps"] if s["stage"] == "quantize")["key_material"]["components"]
    assert not unet_first["unet"].get("skipped") and unet_first["text_encoder"]["skipped"]
    changed = {**base, "components": {"unet": {"quantize": {"calibration": {"method": "percentile"}}}}}
    m = _build(cli, write_recipe(changed, "changed.yaml"), tmp_path / "out")
    steps = {
        s["stage"]: s["key_material"]["components"]
        for s in m["steps"]
        if s["stage"] in ("export", "quantize", "compile")
    }
    assert steps["export"]["unet"]["cached"]  # the UNet's export is the same too
    for stage in ("quantize", "compile"):
        assert not steps[stage]["unet"]["cached"], stage
    for stage, parts in steps.items():
        for other in ("text_encoder", "vae_encoder", "vae_decoder"):
            assert _reused(parts, other), (stage, other)


def _int8_recipe(target: str, options: dict | None = None) -> dict:
    return {
        "extends": [str(REPO / "recipes" / f"sd-{target}.yaml")],
        "name": f"sd-{target}-int8-{(options or {}).get('mode', 'default')}",
        "quantize": {**FAST_INT8, **({"options": options} if options else {})},
    }


@pytest.mark.parametrize(
    "target, options, min_psnr",
    [
        # measured with the recipes' defaults: 22.1 dB (ORT QDQ), 28.8 (NNCF), 28.9 (hybrid), 64.7 (weights)
        ("cpu", None, 20.0),
        ("openvino", None, 25.0),
        ("openvino", {"mode": "hybrid"}, 25.0),
        ("openvino", {"mode": "weights"}, 50.0),
    ],
)
def test_unet_int8_keeps_the_image_and_names_the_unet_as_first_drift(
    target, options, min_psnr, cli, tmp_path, shared_cache, monkeypatch, write_recipe
):
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    m = _build(cli, write_recipe(_int8_recipe(target, options)), tmp_path / "out")
    comps = m["artifact"]["components"]
    assert comps["unet"]["meta"]["quantized"]["precision"] == "int8"
    assert all("quantized" not in comps[n]["meta"] for n in ("text_encoder", "vae_encoder", "vae_decoder"))
    v = m["validation"]
    tm = v["task_metrics"]
    assert tm["psnr_db"] >= min_psnr and tm["ssim"] >= 0.75, tm
    # int8's default pipeline gates (vopt.validate.defaults), reported and passed
    gates = {g["metric"]: g for g in v["gates"]}
    assert {k: gates[k]["condition"] for k in ("psnr_db", "ssim", "latent_cosine")} == {
        "psnr_db": ">=20",
        "ssim": ">=0.75",
        "latent_cosine": ">=0.85",
    }
    assert all(g["default"] and g["passed"] for g in gates.values())
    assert v["quantized_components"] == {"unet": "int8"}
    # the drift table: each component on the inputs the reference pipeline gave it; the UNet drifts first
    # (weights-only int8 stays above the drift line, 0.9999, and is still the furthest from its reference)
    cosines = {n: p["worst_cosine"] for n, p in v["components"].items()}
    assert min(cosines, key=cosines.get) == "unet", cosines
    if not options or options["mode"] != "weights":
        assert v["first_drift"]["component"] == "unet" and cosines["unet"] < 0.9999
    assert all(v["components"][n]["worst_cosine"] > 0.9999 for n in ("text_encoder", "vae_encoder"))
    quant = next(s for s in m["steps"] if s["stage"] == "quantize")["report"]["components"]
    assert quant["text_encoder"]["skipped"] and quant["vae_decoder"]["skipped"]
    unet = quant["unet"]
    check = unet["check"]
    assert check["status"] == "ok" and "top1_agreement" not in check["worst"]
    assert {g["metric"] for g in check["gates"]} == {"cosine", "sqnr_db"} and all(
        g["passed"] for g in check["gates"]
    )
    assert check["data"].startswith("unet inputs recorded from") and check["images"] == 16  # 8 calls x 2 rows
    if options and options["mode"] == "weights":
        assert unet["scheme_info"]["weights"].startswith("nncf.compress_weights INT8_ASYM")
    elif options and options["mode"] == "hybrid":
        assert "linear layers with int8 weights only" in unet["scheme_info"]["hybrid"]
    else:
        assert unet["calibration"]["kind"] == "feeds" and unet["calibration"]["samples"] == 16
    report = (tmp_path / "out" / m["recipe"]["name"] / "report.md").read_text()
    assert "| unet | ort-qdq int8 |" in report or "| unet | nncf int8 |" in report  # the quantize check table
    assert v["first_drift"] is None or "First component to drift from its reference: unet." in report


def test_calibration_feeds_are_the_pipelines_own_and_never_the_validation_prompts(
    cli, tmp_path, shared_cache, monkeypatch, write_recipe
):
    """The UNet's calibration inputs are what the denoising loop feeds it: the scheduler's timesteps in order,
    both guidance halves, latents that change from step to step; from prompts and seeds disjoint from the
    validation run's, and the check's prompts disjoint from calibration's."""
    import numpy as np

    from vopt.core.cache import Cache
    from vopt.models.families.stable_diffusion import make_scheduler
    from vopt.quant.feeds import DEFAULT_PROMPTS, recorded

    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    recipe = {
        "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
        "name": "sd-feeds",
        "quantize": FAST_INT8,
        "validate": None,
    }
    m = _build(cli, write_recipe(recipe), tmp_path / "out")
    quant = next(s for s in m["steps"] if s["stage"] == "quantize")
    data = quant["key_material"]["components"]["unet"]["config"]["calibration_from"]
    validation = ["a photograph of an astronaut riding a horse", "a red bicycle in the snow"]
    assert data["validation_prompts"] == validation
    calibration = {p for p, _ in data["calibration_runs"]}
    check = {p for p, _ in data["check_runs"]}
    assert calibration and check and not calibration & check and not (calibration | check) & set(validation)
    assert calibration | check == set(DEFAULT_PROMPTS)
    seeds = [s for _, s in data["calibration_runs"] + data["check_runs"]]
    assert len(set(seeds)) == len(seeds) and 0 not in seeds  # each run its own, never the validation seed
    report = quant["report"]["components"]["unet"]["data"]
    assert set(report["calibration_prompts"]) <= calibration and set(report["check_prompts"]) <= check

    load = Cache(shared_cache).get(next(s for s in m["steps"] if s["stage"] == "load")["key"])
    ctx = type("Ctx", (), {"artifacts": {"load": load.artifact}})()
    got = recorded(ctx, "unet", data, {"calibration": 8})
    feeds, runs = got["calibration"], got["calibration_runs"]
    assert len(feeds) == 8 and runs == 2  # whole runs: 4 steps each
    scheduler = make_scheduler("dpm++", load.artifact.meta["pipeline"].get("scheduler"))
    scheduler.set_timesteps(4)
    expected = [float(t) for t in scheduler.timesteps]
    for run in (feeds[:4], feeds[4:]):
        assert [float(f["timestep"][0]) for f in run] == expected
        assert all(f["sample"].shape == (2, 4, 16, 16) for f in run)  # unconditional + prompted rows
        assert np.array_equal(run[0]["sample"][0], run[0]["sample"][1])  # the same latent, both halves
        stds = [float(np.std(f["sample"])) for f in run]
        assert abs(stds[0] - 1.0) < 0.2 and len(set(np.round(stds, 3))) == 4  # seeded noise, then moving
    assert not np.array_equal(feeds[0]["sample"], feeds[4]["sample"])  # another seed
    assert not np.array_equal(feeds[0]["encoder_hidden_states"], feeds[4]["encoder_hidden_states"])


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


def test_fp16_through_the_quantize_stage_keeps_the_text_encoders_mask_fp32(
    cli, tmp_path, shared_cache, monkeypatch, write_recipe
):
    """`quantize: {precision: fp16}`: ranges recorded on each component's own calls (the text encoder's
    causal mask is float-min), the overflow nodes kept fp32 and listed with why, the image kept."""
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    recipe = {
        "extends": [str(REPO / "recipes" / "sd-cpu.yaml")],
        "name": "sd-fp16-quantize",
        "quantize": {"precision": "fp16", "calibration": {"samples": 8}, "check": {"samples": 4}},
        "components": {"text_encoder": {"quantize": {}}},  # the family keeps it float unless asked
    }
    m = _build(cli, write_recipe(recipe), tmp_path / "out")
    parts = next(s for s in m["steps"] if s["stage"] == "quantize")["report"]["components"]
    text = parts["text_encoder"]["scheme_info"]
    assert text["overflow_nodes"] > 0 and "text_encoder inputs recorded from" in text["ranges"]
    recorded = {n: why for n, why in text["kept_fp32_nodes"].items() if why.endswith("(recorded)")}
    assert any("Softmax" in n and "> 8188" in why for n, why in recorded.items()), recorded
    assert parts["unet"]["scheme_info"]["overflow_nodes"] == 0  # the UNet's ranges fit fp16
    assert parts["vae_decoder"]["skipped"]
    tm = m["validation"]["task_metrics"]
    assert tm["psnr_db"] >= 35 and tm["ssim"] > 0.99, tm
    assert "quantized_components" not in m["validation"]  # fp16: the float pipeline gates
    report = (tmp_path / "out" / "sd-fp16-quantize" / "report.md").read_text()
    assert "nodes kept in fp32, and why" in report and "self_attn/Softmax" in report


@pytest.mark.slow
def test_coreml_recipe_converts_every_component_and_reads_it_back(cli, tmp_path, shared_cache, monkeypatch):
    """recipes/sd-mps.yaml up to the hardware: one .mlpackage per component, converted and read back (its
    spec's inputs are the component's); the pipeline cannot run off macOS and says so instead of passing."""
    pytest.importorskip("coremltools")
    monkeypatch.setenv("VOPT_CACHE_DIR", str(shared_cache))
    out = tmp_path / "out"
    res = cli("build", REPO / "recipes" / "sd-mps.yaml", "--out", out, "--json")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    comps = m["artifact"]["components"]
    assert list(comps) == COMPONENTS
    for name, comp in comps.items():
        assert comp["format"] == "coreml-mlpackage", (name, comp["format"])
        assert comp["file"].endswith(".mlpackage") and (out / "sd-mps" / comp["file"]).is_dir(), comp["file"]
    assert m["validation"]["status"] != "ok"  # no Core ML runtime here: not run, never a pass
