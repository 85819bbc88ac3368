"""Sane random weights. transformers' random init makes CNN outputs collapse to ~0 (MobileNetV2 ~1e-21,
EfficientNet exactly 0), so every diff check would pass and mean nothing."""

from __future__ import annotations

from typing import Any


def sane_random_init(model: Any, input_shape: list[int], seed: int = 0, passes: int = 4) -> Any:
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    has_bn = False
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.02)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            has_bn = True
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration passes
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=(1.0 / m.in_features) ** 0.5)
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.02)
    if has_bn:
        # BatchNorm statistics recomputed on a few batches, so activations keep a real spread.
        model.train()
        shape = [max(4, input_shape[0]), *input_shape[1:]]
        with torch.no_grad():
            for _ in range(passes):
                model(torch.randn(*shape, generator=gen))
    model.eval()
    return model
