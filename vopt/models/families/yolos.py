"""YOLOS: a plain ViT with detection tokens."""

from __future__ import annotations

from vopt.models.families.base import Family, register_family


@register_family
class Yolos(Family):
    name = "yolos"
    model_types = ("yolos",)
    task = "object-detection"
    outputs = ("logits", "pred_boxes")
    image_size = 800
    is_transformer = True
    atol = 5e-4
    unordered_outputs = ("logits", "pred_boxes")
    prune_ignore = ("class_labels_classifier*", "bbox_predictor*")
    quant_exclude_ops = ("Softmax", "LayerNormalization")
    quant_exclude_nodes = ("*class_labels_classifier*", "*bbox_predictor*")
    tiny_config = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
                   "image_size": [64, 64], "patch_size": 16, "num_detection_tokens": 10, "num_labels": 5}
