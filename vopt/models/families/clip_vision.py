"""CLIP's vision tower with its projection: image embeddings for retrieval and zero-shot heads."""

from __future__ import annotations

from typing import Any

from vopt.models.families.base import CLIP_MEAN, CLIP_STD, Family


class ClipVision(Family):
    name = "clip_vision"
    model_types = ("clip_vision_model", "clip")
    task = "feature-extraction"
    model_class = "CLIPVisionModelWithProjection"  # loads the vision half of a full CLIP checkpoint too
    outputs = ("image_embeds", "last_hidden_state")
    mean = CLIP_MEAN
    std = CLIP_STD
    resize = 224  # shorter side to 224, then center crop
    is_transformer = True
    prune_ignore = ("visual_projection*",)
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    tiny_config = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "projection_dim": 16,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": 64,
        "patch_size": 16,
    }

    def adapt_config(self, config: Any) -> Any:
        # A full CLIP checkpoint (model_type "clip") carries the vision tower's config inside.
        return config.vision_config if getattr(config, "model_type", None) == "clip" else config
