"""Memory before building: parameter bytes plus activation bytes per batch size, and the largest batch that
fits a budget. Activations are measured by one batch-1 forward pass with hooks (shapes, not a guess)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2, "int8": 1, "int16": 2, "int4": 0.5}


@dataclass
class MemoryEstimate:
    params: int  # parameter count
    param_bytes: int  # at the artifact's weight precision
    activation_peak_bytes: (
        int  # per image: the largest (inputs + output) of any one layer, what must be live at once
    )
    activation_total_bytes: int  # per image: every layer output kept (an upper bound, training-like)
    precision: str
    layers: int
    notes: list[str] = field(default_factory=list)

    def at_batch(self, batch: int) -> dict[str, Any]:
        total = self.param_bytes + batch * self.activation_peak_bytes
        return {
            "batch": batch,
            "param_bytes": self.param_bytes,
            "activation_bytes": batch * self.activation_peak_bytes,
            "total_bytes": total,
            "upper_bound_bytes": self.param_bytes + batch * self.activation_total_bytes,
        }

    def largest_batch(self, budget_bytes: int, limit: int = 4096) -> int | None:
        """The largest power-of-two batch whose estimate fits the budget; None if even batch 1 does not."""
        best = None
        b = 1
        while b <= limit and self.at_batch(b)["total_bytes"] <= budget_bytes:
            best, b = b, b * 2
        return best


def estimate_torch(module: Any, input_shape: list[int], precision: str = "fp32") -> MemoryEstimate:
    import torch

    width = _BYTES.get(precision, 4)
    params = sum(p.numel() for p in module.parameters())
    peak = total = layers = 0
    # One pass at batch 1; float activations scale with the activation precision (fp16 halves them, int8
    # quarters).
    act_width = width / 4

    def bytes_of(x: Any) -> int:
        if isinstance(x, torch.Tensor):
            return x.numel() * x.element_size()
        if isinstance(x, (list, tuple)):
            return sum(bytes_of(v) for v in x)
        if isinstance(x, dict):
            return sum(bytes_of(v) for v in x.values())
        return sum(bytes_of(v) for v in vars(x).values()) if hasattr(x, "__dict__") else 0

    def hook(_mod: Any, inputs: Any, output: Any) -> None:
        nonlocal peak, total, layers
        out = bytes_of(output)
        peak = max(peak, bytes_of(inputs) + out)
        total += out
        layers += 1

    handles = [m.register_forward_hook(hook) for m in module.modules() if not list(m.children())]
    try:
        with torch.inference_mode():
            module(torch.zeros([1, *input_shape[1:]]))
    finally:
        for h in handles:
            h.remove()
    return MemoryEstimate(
        params=params,
        param_bytes=int(params * width),
        activation_peak_bytes=int(peak * act_width),
        activation_total_bytes=int(total * act_width),
        precision=precision,
        layers=layers,
    )


def estimate_onnx(path: Any, input_shape: list[int], precision: str = "fp32") -> MemoryEstimate:
    """From the graph: initializer bytes as stored, activation sizes from ONNX shape inference at batch 1."""
    import numpy as np
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load(str(path))
    # Weights are initializers, or Constant nodes (exporters that keep weights in the graph, e.g. the
    # PaddlePaddle converter and some torch exports): both count, and neither is an activation.
    weights = [numpy_helper.to_array(i) for i in model.graph.initializer]
    constants = {n.output[0]: n for n in model.graph.node if n.op_type == "Constant" and n.output}
    for node in constants.values():
        for a in node.attribute:
            if a.name == "value":
                weights.append(numpy_helper.to_array(a.t))
            elif a.name in ("value_floats", "value_ints"):
                weights.append(np.asarray(onnx.helper.get_attribute_value(a)))
    params = sum(int(w.size) for w in weights)
    param_bytes = sum(w.nbytes for w in weights)
    inp = model.graph.input[0]
    for dim, size in zip(inp.type.tensor_type.shape.dim, [1, *input_shape[1:]], strict=False):
        dim.ClearField("dim_param")
        dim.dim_value = size
    inferred = shape_inference.infer_shapes(model)
    sizes: dict[str, int] = {}
    for vi in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]:
        t = vi.type.tensor_type
        dims = [d.dim_value for d in t.shape.dim]
        if dims and all(d > 0 for d in dims):
            sizes[vi.name] = int(np.prod(dims)) * onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
    inits = {i.name for i in model.graph.initializer} | set(constants)
    peak = total = 0
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        out = sum(sizes.get(o, 0) for o in node.output)
        peak = max(peak, sum(sizes.get(i, 0) for i in node.input if i not in inits) + out)
        total += out
    notes = [] if sizes else ["shape inference gave no activation shapes: activation memory unknown"]
    return MemoryEstimate(
        params=params,
        param_bytes=int(param_bytes),
        activation_peak_bytes=peak,
        activation_total_bytes=total,
        precision=precision,
        layers=len(model.graph.node) - len(constants),
        notes=notes,
    )


def parse_bytes(text: str) -> int:
    """'4GB', '512MiB', '1.5G', '2000000' -> bytes (decimal units for GB/MB, binary for GiB/MiB)."""
    import re

    from vopt.errors import RecipeError

    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgGtT]?)(i?)[bB]?\s*", text)
    if not m:
        raise RecipeError(f"--memory {text}: use a size such as 4GB, 512MiB or 2000000000")
    value, unit, binary = float(m.group(1)), m.group(2).upper(), m.group(3)
    power = " KMGT".index(unit) if unit else 0
    return int(value * (1024 if binary else 1000) ** power)
