"""Transformer defaults for models that come through the generic path (no family says what they are):
an attention block in the ONNX graph (MatMul -> [Div/Mul/Add/...] -> Softmax -> [...] -> MatMul) makes the
quantize step treat the model as a transformer, as the vit/swin/dinov2 families declare: Softmax and
LayerNormalization kept in float (`quant_exclude_ops`) and NNCF's ModelType.TRANSFORMER (`is_transformer`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

TRANSFORMER_EXCLUDE_OPS = ("Softmax", "LayerNormalization")
# Ops that sit between the score MatMul, the Softmax and the value MatMul in exported attention.
_PASS = {
    "Div",
    "Mul",
    "Add",
    "Sub",
    "Where",
    "Cast",
    "Reshape",
    "Transpose",
    "Dropout",
    "Identity",
    "Sqrt",
    "Expand",
    "Unsqueeze",
    "Squeeze",
    "Slice",
    "Concat",
    "Gather",
}


def attention_blocks(path: Path, hops: int = 4) -> int:
    """Softmax nodes fed (within `hops` pass-through ops) by a MatMul and feeding a MatMul."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    consumers: dict[str, list[Any]] = {}
    for n in graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def up(name: str, depth: int) -> bool:
        node = producer.get(name)
        if node is None or depth > hops:
            return False
        if node.op_type in ("MatMul", "Einsum"):
            return True
        return node.op_type in _PASS and any(up(i, depth + 1) for i in node.input)

    def down(name: str, depth: int) -> bool:
        if depth > hops:
            return False
        for node in consumers.get(name, []):
            if node.op_type in ("MatMul", "Einsum"):
                return True
            if node.op_type in _PASS and any(down(o, depth + 1) for o in node.output):
                return True
        return False

    return sum(1 for n in graph.node if n.op_type == "Softmax" and up(n.input[0], 0) and down(n.output[0], 0))


def with_transformer_defaults(family: Any, model: Path) -> dict[str, Any] | None:
    """Give a generic-path family the transformer defaults when its graph has attention; what was applied."""
    if getattr(family, "is_transformer", False) or getattr(family, "name", "") != "generic":
        return None
    if model.suffix != ".onnx" or not model.is_file():
        return None
    blocks = attention_blocks(model)
    if not blocks:
        return None
    family.is_transformer = True  # instance attributes: this build's family only
    family.quant_exclude_ops = tuple(
        sorted({*getattr(family, "quant_exclude_ops", ()), *TRANSFORMER_EXCLUDE_OPS})
    )
    return {
        "attention_blocks": blocks,
        "is_transformer": True,
        "quant_exclude_ops": list(family.quant_exclude_ops),
        "why": "MatMul -> Softmax -> MatMul found in the graph: transformer defaults, as the vit family has",
    }
