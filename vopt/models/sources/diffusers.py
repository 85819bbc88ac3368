"""`diffusers`: a Stable Diffusion pipeline as four components (text encoder, UNet, VAE encoder, VAE
decoder), from a diffusers pipeline folder (`model_index.json`), a Hub id with `weights: pretrained`, or
`weights: random` with `model.config` ({text_encoder: ..., unet: ..., vae: ...}: a tiny pipeline for tests).
The folder's layout is read (JSON only, no diffusers import) when the recipe is planned, so a missing or
unsupported component is a recipe error before any work."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.errors import BackendUnavailable, BuildError, RecipeError, first_line, missing_extra
from vopt.models.sources.base import LoadedModel, Source

# What model_index.json must name, the classes vopt takes for each, and the folder each one lives in.
REQUIRED = {
    "text_encoder": ("CLIPTextModel",),
    "unet": ("UNet2DConditionModel",),
    "vae": ("AutoencoderKL",),
    "scheduler": (),  # any diffusers scheduler: validate.pipeline.scheduler picks the one the check runs
}
# Components of other pipeline layouts, and why they are not taken (yet).
UNSUPPORTED = {
    "transformer": "a diffusion transformer (DiT, SD3, Flux); only UNet pipelines (SD 1.x/2.x) are supported",
    "text_encoder_2": "SDXL's second text encoder; only SD 1.x/2.x layouts (one text encoder) are supported",
    "prior": "a prior pipeline (Kandinsky, unCLIP); only SD 1.x/2.x layouts are supported",
}
CONFIG_FILES = {"scheduler": "scheduler_config.json"}
_PRIVATE = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "_commit_hash")


@dataclass
class Layout:
    """A pipeline's components as configs (plus the folder they came from, when one)."""

    configs: dict[str, dict[str, Any]]
    folder: Path | None = None
    tokenizer: Path | None = None
    sources: dict[str, str] = field(default_factory=dict)  # part -> the file its config came from

    def image_size(self) -> tuple[int, int]:
        from vopt.models.families.stable_diffusion import unet_latent_size, vae_scale

        h, w = unet_latent_size(self.configs["unet"])
        scale = vae_scale(self.configs["vae"])
        return h * scale, w * scale


def _clean(config: dict[str, Any]) -> dict[str, Any]:
    """A library config without its bookkeeping keys (they would change the cache key, not the model)."""
    import math

    drop = (*_PRIVATE, "transformers_version", "architectures", "dtype", "torch_dtype")
    # An infinite default (a scheduler's lambda_min_clipped: -inf) would come back from the JSON metadata as
    # null: left out, the class default applies.
    return {
        k: v
        for k, v in config.items()
        if k not in drop and not (isinstance(v, float) and not math.isfinite(v))
    }


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    return {**base, **over}


def read_layout(spec: Any) -> Layout | None:
    """The pipeline's layout from its folder or from the recipe's configs; None for a Hub id (known only once
    downloaded). RecipeError, naming the folder and the component, for anything missing or unsupported."""
    overrides = dict(spec.config or {})
    unknown = sorted(set(overrides) - {"text_encoder", "unet", "vae", "scheduler"})
    if unknown:
        raise RecipeError(
            f"model.config.{unknown[0]}: not a component of a Stable Diffusion pipeline; "
            "model.config takes text_encoder, unet, vae and scheduler"
        )
    if spec.weights not in ("pretrained", "random"):
        raise RecipeError(
            "model.weights: the diffusers source takes `pretrained` (a pipeline folder or Hub id) or `random`"
        )
    local = Path(spec.id).expanduser() if spec.id else None
    if local is not None and local.exists():
        return _folder_layout(local, overrides)
    if spec.weights == "random":
        if spec.id and ("/" not in spec.id or spec.id.startswith((".", "/", "~"))):
            raise RecipeError(f"model.id: no pipeline folder at {local}")
        missing = [p for p in ("text_encoder", "unet", "vae") if not overrides.get(p)]
        if missing:
            raise RecipeError(
                f"model.config.{missing[0]}: required for weights: random without a pipeline folder "
                "(give each component's config: text_encoder, unet, vae)"
            )
        configs = {p: dict(overrides[p]) for p in ("text_encoder", "unet", "vae")}
        configs["scheduler"] = dict(overrides.get("scheduler") or {})
        return Layout(configs, sources={p: f"model.config.{p}" for p in configs})
    if not spec.id:
        raise RecipeError("model.id: the diffusers source needs a pipeline folder or a Hub id")
    return None


def _folder_layout(folder: Path, overrides: dict[str, Any]) -> Layout:
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise RecipeError(f"model.id: {folder}: no model_index.json, so not a diffusers pipeline folder")
    try:
        index = json.loads(index_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecipeError(f"model.id: {index_path}: unreadable: {first_line(exc)}") from None
    for part, why in UNSUPPORTED.items():
        entry = index.get(part)
        if isinstance(entry, list) and entry and entry[-1]:
            raise RecipeError(
                f"model.id: {index_path}: component {part} ({entry[-1]}) is not supported: {why}"
            )
    configs: dict[str, dict[str, Any]] = {}
    sources: dict[str, str] = {}
    for part, classes in REQUIRED.items():
        entry = index.get(part)
        if not (isinstance(entry, list) and len(entry) == 2 and entry[1]):
            raise RecipeError(f"model.id: {index_path}: component {part} is missing from the pipeline")
        if classes and entry[1] not in classes:
            raise RecipeError(
                f"model.id: {index_path}: component {part} is a {entry[1]}, not supported: vopt takes "
                f"{' or '.join(classes)} there (SD 1.x/2.x layouts)"
            )
        config_file = folder / part / CONFIG_FILES.get(part, "config.json")
        if not config_file.is_file():
            raise RecipeError(f"model.id: {folder}: component {part}: {config_file} is missing")
        try:
            config = json.loads(config_file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise RecipeError(f"model.id: {config_file}: unreadable: {first_line(exc)}") from None
        configs[part] = _merge(_clean(config), dict(overrides.get(part) or {}))
        sources[part] = str(config_file)
    tokenizer = folder / "tokenizer"
    return Layout(configs, folder, tokenizer if tokenizer.is_dir() else None, sources)


class DiffusersSource(Source):
    name = "diffusers"
    requires = (("diffusers", "diffusion"),)
    builders = ("vopt.models.families.stable_diffusion:build_component",)
    # Its components run as one pipeline (the denoising loop): quantize calibrates each on the inputs it gets
    # there (vopt.quant.feeds), not on images.
    runs_as_pipeline = True

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time checks: the pipeline's layout, and the pipeline check's size against the UNet's."""
        layout = read_layout(recipe.model)
        if layout is None:
            return
        height, width = layout.image_size()
        shape = recipe.model.input.shape
        where = layout.sources.get("unet", "the UNet's config")
        if [shape[2], shape[3]] != [height, width]:
            raise RecipeError(
                f"model.input.shape: {shape[2]}x{shape[3]} does not match the pipeline's image size "
                f"{height}x{width} (unet sample_size x the VAE's scale, {where})"
            )
        check = getattr(recipe.validate_, "pipeline", None) if recipe.validate_ is not None else None
        for key, want in (("height", height), ("width", width)):
            value = getattr(check, key, None) if check is not None else None
            if value is not None and value != want:
                raise RecipeError(
                    f"validate.pipeline.{key}: {value} does not match the UNet's sample_size: component unet "
                    f"makes {height}x{width} images ({where}; sample_size x the VAE's scale)"
                )

    def load(self, spec: Any) -> LoadedModel:
        import importlib.util

        if importlib.util.find_spec("diffusers") is None:
            raise missing_extra("diffusers", "diffusion", "the diffusers source")
        import torch

        layout = read_layout(spec) or _download(spec)
        random = spec.weights == "random"
        torch.manual_seed(spec.seed)
        try:
            text, unet, vae = _modules(layout, random)
        except (OSError, ValueError, TypeError) as exc:
            raise BuildError(
                f"diffusers cannot build the pipeline {spec.id or 'from model.config'}: {first_line(exc)}",
                stage="load",
            ) from None
        from vopt.models.families.lookup import get_family
        from vopt.models.families.stable_diffusion import COMPONENT_FAMILIES, build_component, vae_scale

        configs = {
            "text_encoder": _clean(text.config.to_diff_dict()),
            "unet": _clean(dict(unet.config)),
            "vae_encoder": _clean(dict(vae.config)),
            "vae_decoder": _clean(dict(vae.config)),
        }
        configs = {k: json.loads(json.dumps(v, default=list)) for k, v in configs.items()}
        states = {
            "text_encoder": {f"model.{k}": v for k, v in text.state_dict().items()},
            "unet": {f"model.{k}": v for k, v in unet.state_dict().items()},
            "vae_encoder": vae.state_dict(),
            "vae_decoder": vae.state_dict(),
        }
        family = get_family("stable_diffusion")
        height, width = layout.image_size()
        te, vc = configs["text_encoder"], configs["vae_decoder"]
        facts = {
            "max_length": int(te.get("max_position_embeddings", 77)),
            "vocab_size": int(te.get("vocab_size", 49408)),
            "bos_token_id": te.get("bos_token_id"),
            "eos_token_id": te.get("eos_token_id"),
            "tokenizer": str(layout.tokenizer) if layout.tokenizer else None,
            "scheduler": json.loads(json.dumps(_clean(layout.configs.get("scheduler") or {}), default=list)),
            "scaling_factor": float(vc.get("scaling_factor", 0.18215)),
            "vae_scale": vae_scale(vc),
            "vae_sample_size": int(vc.get("sample_size", 512)),
            "latent_channels": int(vc.get("latent_channels", 4)),
            "height": height,
            "width": width,
        }
        whole = LoadedModel(None, family, family.task, random_weights=random, meta={"pipeline": facts})
        for part, fam_name in COMPONENT_FAMILIES.items():
            module = build_component(part, configs[part])
            own = {k: v for k, v in states[part].items() if k.split(".")[0] in dict(module.named_children())}
            module.load_state_dict(own, strict=True)
            fam = get_family(fam_name)
            n = sum(p.numel() for p in module.parameters())
            whole.components[part] = LoadedModel(
                module.eval(),
                fam,
                fam.task,
                random_weights=random,
                component=part,
                reference={
                    "build": {
                        "kind": "factory",
                        "arch": "vopt.models.families.stable_diffusion:build_component",
                        "kwargs": {"part": part, "config": configs[part]},
                        "family": fam_name,
                        "task": fam.task,
                    }
                },
                notes=[f"{part}: {type(module).__name__} ({n / 1e6:.2f}M params)"],
            )
        where = str(layout.folder) if layout.folder else "model.config"
        whole.notes.append(
            f"diffusers pipeline from {where}: {', '.join(whole.components)} ({height}x{width} images)"
        )
        return whole


def _modules(layout: Layout, random: bool) -> tuple[Any, Any, Any]:
    """The text encoder, UNet and VAE: pretrained from the folder, or built from the configs."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    if random or layout.folder is None:
        text = CLIPTextModel(CLIPTextConfig(**layout.configs["text_encoder"]))
        unet = UNet2DConditionModel.from_config(layout.configs["unet"])
        vae = AutoencoderKL.from_config(layout.configs["vae"])
    else:
        folder = str(layout.folder)
        text = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder", attn_implementation="eager")
        unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet")
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae")
    return text.eval(), unet.eval(), vae.eval()


def _download(spec: Any) -> Layout:
    """A Hub id: the pipeline's files into the Hugging Face cache, then read as a folder."""
    import os

    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(
            spec.id,
            revision=spec.revision,
            allow_patterns=["model_index.json", "*/config.json", "*/scheduler_config.json", "tokenizer/*"]
            + ["text_encoder/*.safetensors", "unet/*.safetensors", "vae/*.safetensors"],
        )
    except Exception as exc:  # offline, no such repo, gated: one line says which and what to do
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        raise BackendUnavailable(
            f"cannot download diffusers pipeline '{spec.id}'"
            f"{' (HF_HUB_OFFLINE=1)' if offline else ' (no network or no such repo)'}: {first_line(exc)}; "
            f"download it once (`huggingface-cli download {spec.id}`) and point model.id at the folder, or "
            "use `weights: random` with model.config"
        ) from None
    return _folder_layout(Path(folder), {})
