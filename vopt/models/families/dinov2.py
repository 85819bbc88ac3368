from __future__ import annotations

from vopt.models.families.base import Family


class Dinov2(Family):
    name = "dinov2"
    model_types = ("dinov2",)
    task = "feature-extraction"
    outputs = ("last_hidden_state", "pooler_output")
    output_axes = {
        "last_hidden_state": {1: "tokens"}
    }  # 1 + (H/patch)*(W/patch); position embeddings interpolate
    resize = 256
    is_transformer = True
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    tiny_config = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "mlp_ratio": 2,
        "image_size": 64,
        "patch_size": 8,
    }
