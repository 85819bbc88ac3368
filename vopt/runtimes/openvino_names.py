"""OpenVINO op names back to the ONNX layers they were made from: the one rule that excluding layers
(vopt.quant.schemes.nncf_ov), reverting them to float (vopt.quant.schemes.nncf_revert) and timing them
(vopt.quant.layer_speed) share.

OpenVINO's ONNX frontend names an op after its ONNX node, and the ops a node becomes after it with a suffix
(a Conv with bias: '<name>/WithoutBiases' and '<name>'). An op that computes a graph output is the exception:
it is named after the output ('logits', 'boxes'). A rule that missed that once left YOLO's last box op int8
(mean IoU 0.95), and a bias-free last MatMul could not be reverted to float at all."""

from __future__ import annotations

from pathlib import Path


def onnx_producers(model: Path | str) -> dict[str, str]:
    """{tensor name: the name of the ONNX node that computes it}; empty for a file that is not ONNX."""
    import onnx

    if Path(model).suffix != ".onnx":
        return {}
    graph = onnx.load(str(model), load_external_data=False).graph
    return {out: node.name for node in graph.node for out in node.output if node.name}


def onnx_layer(op: str, layers: set[str], producers: dict[str, str]) -> str | None:
    """The layer of `layers` (ONNX node names) that the OpenVINO op `op` was made from, or None: the op is the
    layer, one of its '<layer>/...' parts, or named after a tensor the layer computes."""
    name = op
    while True:
        if name in layers:
            return name
        if producers.get(name) in layers:
            return producers[name]
        if "/" not in name:
            return None
        name = name.rsplit("/", 1)[0]
