from __future__ import annotations

from vopt.models.families.base import HALF, Family


class MobileNet(Family):
    name = "mobilenet"
    model_types = ("mobilenet_v2", "mobilenet_v1")
    task = "image-classification"
    mean = HALF
    std = HALF
    resize = 256
    prune_ignore = ("classifier*",)
    tiny_config = {"depth_multiplier": 0.35, "image_size": 64, "num_labels": 10}
