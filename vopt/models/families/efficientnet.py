"""EfficientNet. HF's pooler is AvgPool2d(kernel_size=hidden_dim, ceil_mode=True): OpenVINO cannot convert it,
so prepare() swaps it for the equivalent AdaptiveAvgPool2d(1)."""

from __future__ import annotations

from typing import Any

from vopt.models.families.base import Family


class EfficientNet(Family):
    name = "efficientnet"
    model_types = ("efficientnet",)
    task = "image-classification"
    resize = 256
    prune_ignore = ("classifier*",)
    quant_exclude_ops = ("Sigmoid",)  # squeeze-excitation gates lose the most in int8
    tiny_config = {
        "width_coefficient": 0.25,
        "depth_coefficient": 0.25,
        "hidden_dim": 320,
        "image_size": 64,
        "num_labels": 10,
    }

    def prepare(self, model: Any) -> Any:
        from torch import nn

        for name, module in list(model.named_modules()):
            for child_name, child in list(module.named_children()):
                if isinstance(child, nn.AvgPool2d) and child.ceil_mode and _kernel(child) >= 64:
                    setattr(module, child_name, nn.AdaptiveAvgPool2d(1))
                    self.applied.append(
                        f"{name + '.' if name else ''}{child_name}: AvgPool2d(kernel_size="
                        f"{child.kernel_size}, ceil_mode=True) -> AdaptiveAvgPool2d(1)"
                    )
        return model


def _kernel(pool: Any) -> int:
    k = pool.kernel_size
    return int(k[0] if isinstance(k, (tuple, list)) else k)
