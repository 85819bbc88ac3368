from __future__ import annotations

from vopt.models.families.base import Family


class Segformer(Family):
    name = "segformer"
    model_types = ("segformer",)
    task = "semantic-segmentation"
    outputs = ("logits",)  # [batch, classes, H/4, W/4]
    output_axes = {"logits": {2: "out_height", 3: "out_width"}}
    image_size = 512
    is_transformer = True
    prune_ignore = ("decode_head.classifier*",)
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    tiny_config = {
        "num_encoder_blocks": 4,
        "depths": [1, 1, 1, 1],
        "hidden_sizes": [16, 32, 64, 128],
        "num_attention_heads": [1, 2, 2, 4],
        "decoder_hidden_size": 32,
        "num_labels": 5,
        "image_size": 64,
    }
