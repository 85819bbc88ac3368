from __future__ import annotations

from vopt.models.families.base import Family


class ConvNext(Family):
    name = "convnext"
    model_types = ("convnext", "convnextv2")
    task = "image-classification"
    resize = 256  # crop_pct 0.875
    prune_ignore = ("classifier*",)
    quant_exclude_ops = ("LayerNormalization",)
    tiny_config = {
        "hidden_sizes": [16, 32, 64, 128],
        "depths": [1, 1, 1, 1],
        "num_labels": 10,
        "image_size": 64,
        "layer_scale_init_value": 1.0,
    }
