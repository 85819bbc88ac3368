"""RT-DETR: hybrid encoder, top-k query selection, deformable decoder. Outputs pass through top-k."""

from __future__ import annotations

from vopt.models.families.base import DetectionFamily

ZERO = [0.0, 0.0, 0.0]
ONE = [1.0, 1.0, 1.0]


class RtDetr(DetectionFamily):
    name = "rt_detr"
    model_types = ("rt_detr", "rt_detr_v2")
    image_size = 640
    mean = ZERO  # RT-DETR takes pixels scaled to [0, 1], no mean/std
    std = ONE
    atol = 1e-3
    scoring = "sigmoid"  # focal-loss class head, no no-object class
    prune_ignore = (
        "class_embed*",
        "bbox_embed*",
        "model.enc_score_head*",
        "model.enc_bbox_head*",
        "model.decoder.class_embed*",
        "model.decoder.bbox_embed*",
    )
    quant_exclude_ops = ("Softmax", "LayerNormalization", "TopK", "GridSample")
    # Anchors and score heads decide the top-k; float-max anchor constants also break fp16.
    quant_exclude_nodes = ("*enc_score_head*", "*enc_bbox_head*", "*anchors*", "*valid_mask*", "*bbox_embed*")
    tiny_config = {
        "backbone_config": {
            "model_type": "rt_detr_resnet",
            "embedding_size": 16,
            "hidden_sizes": [16, 32, 64, 128],
            "depths": [1, 1, 1, 1],
            "layer_type": "basic",
            "out_features": ["stage2", "stage3", "stage4"],
        },
        "encoder_in_channels": [32, 64, 128],
        "encoder_hidden_dim": 32,
        "encoder_ffn_dim": 64,
        "encoder_attention_heads": 2,
        "d_model": 32,
        "decoder_in_channels": [32, 32, 32],
        "decoder_ffn_dim": 64,
        "decoder_layers": 1,
        "decoder_attention_heads": 2,
        "decoder_n_points": 2,
        "num_queries": 20,
        "num_labels": 5,
        "num_denoising": 0,
        "anchor_image_size": None,
    }
