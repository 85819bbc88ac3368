from __future__ import annotations

from vopt.models.families.base import Family


class ResNet(Family):
    name = "resnet"
    model_types = ("resnet",)
    task = "image-classification"
    resize = 256
    prune_ignore = ("classifier*",)
    tiny_config = {
        "embedding_size": 16,
        "hidden_sizes": [16, 32, 64, 128],
        "depths": [1, 1, 1, 1],
        "num_labels": 10,
        "image_size": 64,
    }
