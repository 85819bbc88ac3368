"""DETR: a CNN backbone, a transformer encoder-decoder and a fixed set of object queries."""

from __future__ import annotations

from vopt.models.families.base import DetectionFamily


class Detr(DetectionFamily):
    name = "detr"
    model_types = ("detr",)
    image_size = 800
    prune_ignore = ("class_labels_classifier*", "bbox_predictor*")
    quant_exclude_nodes = ("*class_labels_classifier*", "*bbox_predictor*")
    # Without timm: transformers' own ResNet backbone, no pretrained download.
    tiny_config = {
        "use_timm_backbone": False,
        "use_pretrained_backbone": False,
        "backbone_config": {
            "model_type": "resnet",
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
            "out_features": ["stage4"],
        },
        "d_model": 32,
        "encoder_layers": 1,
        "decoder_layers": 1,
        "encoder_attention_heads": 2,
        "decoder_attention_heads": 2,
        "encoder_ffn_dim": 64,
        "decoder_ffn_dim": 64,
        "num_queries": 10,
        "num_labels": 5,
    }
