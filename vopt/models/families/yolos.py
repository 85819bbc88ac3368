"""YOLOS: a plain ViT with detection tokens."""

from __future__ import annotations

from vopt.models.families.base import DetectionFamily


class Yolos(DetectionFamily):
    name = "yolos"
    model_types = ("yolos",)
    image_size = 800
    prune_ignore = ("class_labels_classifier*", "bbox_predictor*")
    quant_exclude_nodes = ("*class_labels_classifier*", "*bbox_predictor*")
    tiny_config = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "image_size": [64, 64],
        "patch_size": 16,
        "num_detection_tokens": 10,
        "num_labels": 5,
    }
