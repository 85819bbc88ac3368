"""Conv+BatchNorm folding on any torch module, found by watching one forward pass (no tracing needed),
and channels_last where it measurably helps."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class FuseResult:
    fused: list[tuple[str, str]] = field(default_factory=list)  # (conv, batchnorm) module names
    unfused_bn: list[str] = field(default_factory=list)  # BatchNorms not fed by a convolution alone


def is_batchnorm(module: Any) -> bool:
    from torch import nn

    if isinstance(module, nn.BatchNorm2d):
        return True
    # transformers' DETR / RT-DETR backbones use their own FrozenBatchNorm2d (fixed eps 1e-5).
    return type(module).__name__.endswith("FrozenBatchNorm2d") and all(
        hasattr(module, b) for b in ("weight", "bias", "running_mean", "running_var")
    )


def find_conv_bn_pairs(model: Any, example: Any, call: Any) -> FuseResult:
    """Pairs where a BatchNorm's input is exactly the tensor a Conv2d just produced."""
    from torch import nn

    conv_out: dict[int, tuple[str, Any]] = {}
    seen: dict[str, set[str]] = {}
    bns: list[str] = []
    handles = []

    def conv_hook(name):
        def hook(mod, inp, out):
            conv_out[id(out)] = (name, out)  # keep the tensor alive so its id stays unique

        return hook

    def bn_hook(name):
        def hook(mod, inp):
            hit = conv_out.get(id(inp[0]))
            seen.setdefault(name, set()).add(hit[0] if hit is not None and hit[1] is inp[0] else "")

        return hook

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            handles.append(mod.register_forward_hook(conv_hook(name)))
        elif is_batchnorm(mod):
            bns.append(name)
            handles.append(mod.register_forward_pre_hook(bn_hook(name)))
    try:
        call(example)
    finally:
        for h in handles:
            h.remove()
    result = FuseResult()
    convs_used: dict[str, int] = {}
    for bn in bns:
        sources = seen.get(bn, set())
        if len(sources) == 1 and "" not in sources:
            conv = next(iter(sources))
            convs_used[conv] = convs_used.get(conv, 0) + 1
            result.fused.append((conv, bn))
        else:
            result.unfused_bn.append(bn)
    # A conv feeding two BatchNorms cannot be folded into both.
    shared = {c for c, n in convs_used.items() if n > 1}
    result.unfused_bn += [bn for c, bn in result.fused if c in shared]
    result.fused = [(c, bn) for c, bn in result.fused if c not in shared]
    return result


def fold(model: Any, pairs: list[tuple[str, str]]) -> None:
    """Fold each BatchNorm into its convolution and replace the BatchNorm with Identity."""
    import torch
    from torch import nn
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    modules = dict(model.named_modules())
    for conv_name, bn_name in pairs:
        conv, bn = modules[conv_name], modules[bn_name]
        eps = getattr(bn, "eps", 1e-5)
        with torch.no_grad():
            w, b = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, eps, bn.weight, bn.bias
            )
        conv.weight = w
        conv.bias = b
        parent_name, _, child = bn_name.rpartition(".")
        parent = modules[parent_name] if parent_name else model
        setattr(parent, child, nn.Identity())


def time_forward(call: Any, example: Any, reps: int = 5) -> float:
    """Median seconds of one eager forward."""
    import torch

    times = []
    with torch.no_grad():
        call(example)  # warm-up
        for _ in range(reps):
            t0 = time.perf_counter()
            call(example)
            times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]
