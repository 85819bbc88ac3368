"""Stable Diffusion (SD 1.x/2.x layouts, loaded through diffusers): a text encoder, a UNet and a VAE as four
components (`text_encoder`, `unet`, `vae_encoder`, `vae_decoder`, named and laid out as Optimum's diffusers
export names them), each with its own family here, and the composite family `stable_diffusion`, whose
`run_components` is the denoising loop: diffusers' scheduler, a fixed seed, fixed prompts and classifier-free
guidance, calling each component through the `calls` it is given (PyTorch modules for the reference, the
artifacts on their runtime for the check)."""

from __future__ import annotations

import zlib
from typing import TYPE_CHECKING, Any, ClassVar

from vopt.models.families.base import HALF, Family
from vopt.recipe.sections.validate import SCHEDULERS

if TYPE_CHECKING:
    import numpy as np

    from vopt.models.families.base import ComponentCall

COMPONENTS = ("text_encoder", "unet", "vae_encoder", "vae_decoder")
# Stable Diffusion 1.x's scheduler settings, for pipelines that do not ship theirs (random weights).
SD_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "steps_offset": 1,
    "prediction_type": "epsilon",
}
# A tiny pipeline for tests and smoke builds (random weights): 32x32 images, 16x16 latents.
TINY_UNET: dict[str, Any] = {
    "block_out_channels": [32, 64],
    "layers_per_block": 2,
    "sample_size": 16,
    "in_channels": 4,
    "out_channels": 4,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": 8,
}
TINY_VAE: dict[str, Any] = {
    "block_out_channels": [32, 64],
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "up_block_types": ["UpDecoderBlock2D", "UpDecoderBlock2D"],
    "latent_channels": 4,
    "sample_size": 32,
}
TINY_TEXT_ENCODER: dict[str, Any] = {
    "hidden_size": 32,
    "intermediate_size": 37,
    "num_hidden_layers": 5,
    "num_attention_heads": 4,
    "vocab_size": 1000,
    "max_position_embeddings": 77,
    "projection_dim": 32,
    "bos_token_id": 998,
    "eos_token_id": 999,
    "pad_token_id": 999,
}
TINY_PIPELINE = {"unet": TINY_UNET, "vae": TINY_VAE, "text_encoder": TINY_TEXT_ENCODER}


# -- the component modules (what is exported and cached; rebuilt by build_component from their config) ---
def build_component(part: str, config: dict[str, Any]) -> Any:
    """The module of one component from its library config (the architecture reference of the cache: the
    weights are safetensors beside it)."""
    return _classes()[part](config).eval()


_CLASSES: dict[str, type] = {}


def _classes() -> dict[str, type]:
    if _CLASSES:
        return _CLASSES
    import numpy as np
    import torch

    class TextEncoder(torch.nn.Module):
        """CLIP's text model: token ids in, the hidden states the UNet attends to (and the pooled output)."""

        def __init__(self, config: dict[str, Any]):
            super().__init__()
            from transformers import CLIPTextConfig, CLIPTextModel

            self.config = dict(config)
            self.model = CLIPTextModel(CLIPTextConfig(**config))

        def forward(self, input_ids):
            # int32 ids in (TensorRT binds no int64; Optimum's SD export does the same), int64 inside
            out = self.model(input_ids=input_ids.long(), return_dict=True)
            return out.last_hidden_state, out.pooler_output

        def example_inputs(self, batch: int, height: int, width: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(0)
            n = self.config.get("max_position_embeddings", 77)
            vocab = self.config.get("vocab_size", 49408)
            return {"input_ids": rng.integers(0, vocab, size=(2 * batch, n)).astype(np.int32)}

    class Unet(torch.nn.Module):
        """The denoiser: a noisy latent, its timestep (float, one per row) and the text states in, the
        predicted noise out."""

        def __init__(self, config: dict[str, Any]):
            super().__init__()
            from diffusers import UNet2DConditionModel

            self.config = dict(config)
            self.model = UNet2DConditionModel.from_config(config)

        def forward(self, sample, timestep, encoder_hidden_states):
            return (self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0],)

        def example_inputs(self, batch: int, height: int, width: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(0)
            c = self.config.get("in_channels", 4)
            h, w = unet_latent_size(self.config)  # the recipe's size must match it (checked at plan time)
            b = 2 * batch  # classifier-free guidance runs the unconditional and the prompted rows together
            dim = self.config.get("cross_attention_dim", 768)
            dim = dim[0] if isinstance(dim, (list, tuple)) else dim
            return {
                "sample": rng.standard_normal((b, c, h, w)).astype(np.float32),
                "timestep": np.full((b,), 500.0, np.float32),
                "encoder_hidden_states": rng.standard_normal((b, 77, dim)).astype(np.float32),
            }

    def _vae(config: dict[str, Any]) -> Any:
        from diffusers import AutoencoderKL

        return AutoencoderKL.from_config(config)

    class VaeEncoder(torch.nn.Module):
        """The VAE's encoder: an image in [-1, 1] in, the latent distribution's parameters (mean and log
        variance, as Optimum's `latent_parameters`) out."""

        def __init__(self, config: dict[str, Any]):
            super().__init__()
            self.config = dict(config)
            vae = _vae(config)
            self.encoder = vae.encoder
            self.quant_conv = vae.quant_conv if vae.quant_conv is not None else torch.nn.Identity()

        def forward(self, sample):
            return (self.quant_conv(self.encoder(sample)),)

        def example_inputs(self, batch: int, height: int, width: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(0)
            return {"sample": rng.uniform(-1, 1, (batch, 3, height, width)).astype(np.float32)}

    class VaeDecoder(torch.nn.Module):
        """The VAE's decoder: a latent (already divided by the scaling factor) in, an image in [-1, 1] out.
        Exported with dynamic height and width, so a large latent decodes in tiles."""

        def __init__(self, config: dict[str, Any]):
            super().__init__()
            self.config = dict(config)
            vae = _vae(config)
            self.post_quant_conv = (
                vae.post_quant_conv if vae.post_quant_conv is not None else torch.nn.Identity()
            )
            self.decoder = vae.decoder

        def forward(self, latent_sample):
            return (self.decoder(self.post_quant_conv(latent_sample)),)

        def example_inputs(self, batch: int, height: int, width: int) -> dict[str, np.ndarray]:
            rng = np.random.default_rng(0)
            c = self.config.get("latent_channels", 4)
            h, w = latent_size(self.config, height, width)
            return {"latent_sample": rng.standard_normal((batch, c, h, w)).astype(np.float32)}

    _CLASSES.update(text_encoder=TextEncoder, unet=Unet, vae_encoder=VaeEncoder, vae_decoder=VaeDecoder)
    return _CLASSES


def vae_scale(vae_config: dict[str, Any]) -> int:
    """How many image pixels one latent pixel stands for (8 in SD 1.x/2.x)."""
    return 2 ** (len(vae_config.get("block_out_channels", [64])) - 1)


def latent_size(vae_config: dict[str, Any], height: int, width: int) -> tuple[int, int]:
    """The latent's height and width for an image of `height` x `width`."""
    scale = vae_scale(vae_config)
    return max(1, height // scale), max(1, width // scale)


def unet_latent_size(unet_config: dict[str, Any]) -> tuple[int, int]:
    """The UNet's native latent height and width (`sample_size`: one int, or a pair)."""
    size = unet_config.get("sample_size", 64)
    return (int(size[0]), int(size[1])) if isinstance(size, (list, tuple)) else (int(size), int(size))


# -- the families ------------------------------------------------------------------------------------------
def tiny_pipeline_model() -> dict[str, Any]:
    """The `model:` section of the tiny test pipeline (random weights, 32x32 images)."""
    return {
        "source": "diffusers",
        "family": "stable_diffusion",
        "weights": "random",
        "config": {k: dict(v) for k, v in TINY_PIPELINE.items()},
        "input": {"shape": [1, 3, 32, 32]},
    }


class _Component(Family):
    """One component of a Stable Diffusion pipeline: several named inputs, not an image."""

    task: ClassVar[str] = "text-to-image"
    mean: ClassVar[list[float]] = HALF
    std: ClassVar[list[float]] = HALF
    image_size: ClassVar[int] = 512
    config_library: ClassVar[str] = "diffusers"
    # The axes of each input and output that are dynamic when the target allows it (besides none: static).
    axes: ClassVar[dict[str, dict[int, str]]] = {}
    atol: ClassVar[float] = 1e-3

    def example_inputs(self, model: Any, input_shape: list[int]) -> dict[str, Any] | None:
        return model.example_inputs(int(input_shape[0]), int(input_shape[2]), int(input_shape[3]))

    def tiny_model(self) -> dict[str, Any]:
        return tiny_pipeline_model()  # a component is built as part of its pipeline

    def dynamic_axes(self, dynamic_batch: bool) -> dict[str, dict[int, str]] | None:
        return {k: dict(v) for k, v in self.axes.items()} if dynamic_batch else None


class SdTextEncoder(_Component):
    name = "sd_text_encoder"
    outputs = ("last_hidden_state", "pooler_output")
    axes = {"input_ids": {0: "batch"}, "last_hidden_state": {0: "batch"}, "pooler_output": {0: "batch"}}
    tiny_config = TINY_TEXT_ENCODER


class SdUnet(_Component):
    name = "sd_unet"
    outputs = ("out_sample",)
    # int8: what diffusion UNets keep in float (the parts whose error the denoising loop amplifies): the first
    # and last convolutions, the timestep and its embedding (the batch broadcast `Expand` of the timestep
    # input, its sinusoids and their MLP: an 8-bit timestep over 0..999 moves in steps of about 4, which the
    # high-frequency sinusoids turn into noise), every normalization (GroupNorm exports as Reshape ->
    # InstanceNormalization -> Reshape -> Mul -> Add, all under `norm*/`; the transformer blocks' LayerNorms)
    # and the attention Softmax.
    quant_exclude_ops = ("Softmax", "InstanceNormalization", "GroupNormalization", "LayerNormalization")
    quant_exclude_nodes = (
        "*/Expand",
        "*/conv_in/*",
        "*/conv_out/*",
        "*/time_proj/*",
        "*/time_embedding/*",
        "*norm*/*",
    )
    # NNCF: ModelType.TRANSFORMER (its attention MatMuls), with SmoothQuant's alpha for MatMuls at 0.15, as
    # diffusion UNets are quantized with it (optimum-intel); a recipe's `quantize.options.smooth_quant` wins.
    is_transformer = True
    smooth_quant_alpha = 0.15
    axes = {
        "sample": {0: "batch"},
        "timestep": {0: "batch"},
        "encoder_hidden_states": {0: "batch"},
        "out_sample": {0: "batch"},
    }
    tiny_config = TINY_UNET


class SdVaeEncoder(_Component):
    name = "sd_vae_encoder"
    outputs = ("latent_parameters",)
    axes = {
        "sample": {0: "batch", 2: "height", 3: "width"},
        "latent_parameters": {0: "batch", 2: "latent_height", 3: "latent_width"},
    }
    tiny_config = TINY_VAE


class SdVaeDecoder(_Component):
    name = "sd_vae_decoder"
    outputs = ("sample",)
    # Dynamic height and width: VAE tiling decodes a large latent in tiles of another size.
    axes = {
        "latent_sample": {0: "batch", 2: "latent_height", 3: "latent_width"},
        "sample": {0: "batch", 2: "height", 3: "width"},
    }
    tiny_config = TINY_VAE


COMPONENT_FAMILIES = {
    "text_encoder": SdTextEncoder.name,
    "unet": SdUnet.name,
    "vae_encoder": SdVaeEncoder.name,
    "vae_decoder": SdVaeDecoder.name,
}


class StableDiffusion(Family):
    """The pipeline as a whole: what runs the components together (validation, the benchmark)."""

    name = "stable_diffusion"
    task = "text-to-image"
    outputs = ("images", "latents")
    mean: ClassVar[list[float]] = HALF
    std: ClassVar[list[float]] = HALF
    image_size: ClassVar[int] = 512
    config_library: ClassVar[str] = "diffusers"
    tiny_config = TINY_PIPELINE
    tiny_image_size: ClassVar[int] = 32  # TINY_PIPELINE's images (16x16 latents, a VAE of scale 2)

    def tiny_model(self) -> dict[str, Any]:
        return tiny_pipeline_model()

    def run_components(
        self, calls: dict[str, ComponentCall], images: np.ndarray, settings: dict[str, Any] | None = None
    ) -> tuple[dict[str, np.ndarray], dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]:
        """The text-to-image loop (diffusers' StableDiffusionPipeline, step for step) through `calls`; the
        VAE encoder runs on `images` (the validation photographs at the pipeline's size). Each component's
        (feeds, outputs) are recorded for a few representative calls: the text encoder's one, the UNet's
        first, middle and last steps, the decoder's, concatenated along the batch."""
        return denoise(calls, images, PipelineSettings.of(settings))


class PipelineSettings:
    """What one run of the loop needs: the recipe's `validate.pipeline` and the pipeline's own facts (from
    the load step's metadata: scheduler config, tokenizer, scaling factor)."""

    def __init__(self, check: dict[str, Any], model: dict[str, Any]):
        self.steps = int(check.get("steps", 4))
        self.scheduler = str(check.get("scheduler", "dpm++"))
        self.guidance_scale = float(check.get("guidance_scale", 7.5))
        self.height = int(check.get("height") or model.get("height", 512))
        self.width = int(check.get("width") or model.get("width", 512))
        self.images = int(check.get("images", 1))
        self.prompts = list(check.get("prompts") or ["a photograph of an astronaut riding a horse"])
        self.seed = int(check.get("seed", 0))
        self.vae_tiling = bool(check.get("vae_tiling", False))
        self.model = model

    @classmethod
    def of(cls, settings: dict[str, Any] | None) -> PipelineSettings:
        settings = settings or {}
        return cls(dict(settings.get("pipeline") or {}), dict(settings.get("model") or {}))


def make_scheduler(name: str, config: dict[str, Any] | None) -> Any:
    import diffusers

    cls_name = SCHEDULERS.get(name, name)
    cls = getattr(diffusers, cls_name)
    return cls.from_config({**SD_SCHEDULER, **(config or {})})


def tokenize(prompts: list[str], model: dict[str, Any]) -> np.ndarray:
    """Token ids [len(prompts), max_length]: the pipeline's own CLIP tokenizer where it ships one; otherwise
    (random weights, no vocabulary) each word hashed into the vocabulary between BOS and EOS, padded with EOS,
    which is deterministic and in range, and says nothing about language."""
    import numpy as np

    length = int(model.get("max_length", 77))
    tokenizer_dir = model.get("tokenizer")
    if tokenizer_dir:
        from transformers import CLIPTokenizer

        tok = CLIPTokenizer.from_pretrained(tokenizer_dir)
        ids = tok(prompts, padding="max_length", max_length=length, truncation=True, return_tensors="np")
        return np.asarray(ids["input_ids"], np.int64)
    vocab = int(model.get("vocab_size", 49408))
    bos, eos = int(model.get("bos_token_id", vocab - 2)), int(model.get("eos_token_id", vocab - 1))
    out = np.full((len(prompts), length), eos, np.int64)
    for i, prompt in enumerate(prompts):
        words = [zlib.crc32(w.encode()) % max(1, min(bos, eos)) for w in prompt.lower().split()]
        row = [bos, *words[: length - 2], eos]
        out[i, : len(row)] = row
    return out


def _concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    import numpy as np

    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def denoise(
    calls: dict[str, ComponentCall], images: np.ndarray, s: PipelineSettings
) -> tuple[dict[str, np.ndarray], dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]]:
    import numpy as np
    import torch

    model = s.model
    seen: dict[str, tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = {}
    guided = s.guidance_scale > 1.0
    prompts = [p for p in s.prompts for _ in range(s.images)]  # num_images_per_prompt
    batch = len(prompts)
    ids = tokenize(prompts, model)
    if guided:  # the unconditional rows first, as diffusers concatenates them
        ids = np.concatenate([tokenize([""] * batch, model), ids])
    feeds = {"input_ids": ids.astype(np.int32)}
    text = calls["text_encoder"](feeds)
    seen["text_encoder"] = (feeds, text)
    states = text["last_hidden_state"].astype(np.float32)

    scheduler = make_scheduler(s.scheduler, model.get("scheduler"))
    scheduler.set_timesteps(s.steps)
    generator = torch.Generator().manual_seed(s.seed)
    channels = int(model.get("latent_channels", 4))
    scale = int(model.get("vae_scale", 8))
    shape = (batch, channels, s.height // scale, s.width // scale)
    latents = torch.randn(shape, generator=generator, dtype=torch.float32) * scheduler.init_noise_sigma
    timesteps = list(scheduler.timesteps)
    keep = sorted({0, len(timesteps) // 2, len(timesteps) - 1})
    unet_seen: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]] = []
    for i, t in enumerate(timesteps):
        x = torch.cat([latents, latents]) if guided else latents
        x = scheduler.scale_model_input(x, t)
        feeds = {
            "sample": x.numpy().astype(np.float32),
            "timestep": np.full((len(x),), float(t), np.float32),
            "encoder_hidden_states": states,
        }
        out = calls["unet"](feeds)
        if i in keep:
            unet_seen.append((feeds, out))
        noise = torch.from_numpy(np.ascontiguousarray(out["out_sample"], np.float32))
        if guided:
            uncond, cond = noise.chunk(2)
            noise = uncond + s.guidance_scale * (cond - uncond)
        latents = scheduler.step(noise, t, latents, generator=generator, return_dict=False)[0]
    seen["unet"] = (_concat([f for f, _ in unet_seen]), _concat([o for _, o in unet_seen]))

    scaling = float(model.get("scaling_factor", 0.18215))
    final = latents.numpy().astype(np.float32)
    feeds = {"latent_sample": final / scaling}
    decoded = calls["vae_decoder"](feeds)
    seen["vae_decoder"] = (feeds, decoded)
    pictures = np.clip(decoded["sample"] / 2 + 0.5, 0.0, 1.0)
    outputs = {"images": pictures.astype(np.float32), "latents": final}

    if "vae_encoder" in calls:  # the photographs at the pipeline's size, as img2img would encode them
        feeds = {"sample": np.ascontiguousarray(images[:2], np.float32)}
        encoded = calls["vae_encoder"](feeds)
        seen["vae_encoder"] = (feeds, encoded)
        outputs["encoded_latents"] = encoded["latent_parameters"]
    if s.vae_tiling:  # a latent twice the pipeline's size, decoded in overlapping tiles, blended
        big = np.concatenate([np.concatenate([final, final[..., ::-1]], 3)] * 2, 2) / scaling
        outputs["tiled_images"] = np.clip(tiled_decode(calls["vae_decoder"], big, model) / 2 + 0.5, 0, 1)
    return outputs, seen


def tiled_decode(call: ComponentCall, z: np.ndarray, model: dict[str, Any]) -> np.ndarray:
    """diffusers' AutoencoderKL.tiled_decode, step for step, through a decoder call that takes any latent size
    (the decoder is exported with dynamic height and width): tiles of the VAE's sample size with a quarter
    overlap, each blended into its upper and left neighbours."""
    import numpy as np

    scale = int(model.get("vae_scale", 8))
    sample_min = int(model.get("vae_sample_size", 512))
    latent_min = int(sample_min / scale)
    overlap = int(latent_min * 0.75)
    blend = int(sample_min * 0.25)
    limit = sample_min - blend
    rows = []
    for i in range(0, z.shape[2], overlap):
        row = []
        for j in range(0, z.shape[3], overlap):
            tile = np.ascontiguousarray(z[:, :, i : i + latent_min, j : j + latent_min])
            row.append(
                np.array(call({"latent_sample": tile})["sample"], np.float32)
            )  # own copy: blended in place
        rows.append(row)
    result_rows = []
    for i, row in enumerate(rows):
        result_row = []
        for j, tile in enumerate(row):
            if i > 0:
                tile = _blend_v(rows[i - 1][j], tile, blend)
            if j > 0:
                tile = _blend_h(row[j - 1], tile, blend)
            result_row.append(tile[:, :, :limit, :limit])
        result_rows.append(np.concatenate(result_row, axis=3))
    return np.concatenate(result_rows, axis=2)


# In place, as diffusers' blend_v and blend_h: the tiles below and to the right blend with the blended tile.
def _blend_v(a: np.ndarray, b: np.ndarray, extent: int) -> np.ndarray:
    extent = min(a.shape[2], b.shape[2], extent)
    for y in range(extent):
        b[:, :, y, :] = a[:, :, -extent + y, :] * (1 - y / extent) + b[:, :, y, :] * (y / extent)
    return b


def _blend_h(a: np.ndarray, b: np.ndarray, extent: int) -> np.ndarray:
    extent = min(a.shape[3], b.shape[3], extent)
    for x in range(extent):
        b[:, :, :, x] = a[:, :, :, -extent + x] * (1 - x / extent) + b[:, :, :, x] * (x / extent)
    return b
