from __future__ import annotations

from typing import Any

from vopt.models.families.base import HALF, IMAGENET_MEAN, IMAGENET_STD, Family


class ViT(Family):
    name = "vit"
    model_types = ("vit", "deit")
    task = "image-classification"
    mean = HALF
    std = HALF
    is_transformer = True
    prune_ignore = ("classifier*", "distillation_classifier*")
    # LayerNorm/Softmax/GELU in int8 cost ViT most of its accuracy; keep them float by default.
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    tiny_config = {
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "intermediate_size": 128,
        "image_size": 64,
        "patch_size": 16,
        "num_labels": 10,
    }

    def adapt_config(self, config: Any) -> Any:
        if (
            getattr(config, "model_type", None) == "deit"
        ):  # DeiT checkpoints were trained with ImageNet mean/std
            self.mean, self.std = IMAGENET_MEAN, IMAGENET_STD  # type: ignore[misc]
            self.resize = 256  # type: ignore[misc]
        return config
