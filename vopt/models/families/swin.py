"""Swin: windowed attention. The dynamo exporter needs eager attention (SDPA fails), which vopt always
loads."""

from __future__ import annotations

from vopt.models.families.base import Family


class Swin(Family):
    name = "swin"
    model_types = ("swin", "swinv2")
    task = "image-classification"
    resize = 256
    is_transformer = True
    prune_ignore = ("classifier*",)
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    tiny_config = {
        "image_size": 64,
        "patch_size": 4,
        "embed_dim": 16,
        "depths": [1, 1],
        "num_heads": [2, 2],
        "window_size": 4,
        "num_labels": 10,
    }
