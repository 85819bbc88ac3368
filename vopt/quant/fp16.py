"""The one fp16 conversion (webgpu, rocm, and the quantize stage's fp16 scheme): onnxruntime's float16
converter with fp32 I/O. onnxconverter-common's output failed to load in ORT for DETR, RT-DETR, Swin,
DINOv2."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

# Ops whose fp16 versions overflow or lose too much (float-max constants, big reductions), on top of ORT's
# list.
EXTRA_OP_BLOCK = ("Range", "TopK", "NonMaxSuppression", "RandomNormalLike", "RandomUniformLike")


def convert_to_fp16(
    proto: Any, *, keep_io_types: bool = True, op_block: Iterable[str] = (), node_block: Iterable[str] = ()
) -> tuple[Any, list[str]]:
    """The fp16 model, and the op types that were kept in fp32."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    ops = sorted({*DEFAULT_OP_BLOCK_LIST, *EXTRA_OP_BLOCK, *op_block})
    nodes = sorted(set(node_block))
    converted = convert_float_to_float16(
        proto,
        keep_io_types=keep_io_types,
        op_block_list=ops,
        node_block_list=nodes or None,
        disable_shape_infer=False,
    )
    if nodes:
        drop_fp16_roundtrips(converted)
    return converted, ops


def drop_fp16_roundtrips(proto: Any) -> int:
    """ORT's converter casts every blocked (fp32) node's output to fp16 and back to fp32 for the next blocked
    node, so a value beyond fp16's range between two fp32 nodes still becomes inf. Each Cast(fp16) ->
    Cast(fp32) pair is bypassed here (the fp32 consumer reads the fp32 tensor); returns how many were."""
    import onnx

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    graph = proto.graph
    outputs = {o.name for o in graph.output}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    removed: list[Any] = []
    bypassed = 0
    for cast16 in list(graph.node):
        if cast_to(cast16) != onnx.TensorProto.FLOAT16:
            continue
        src, mid = cast16.input[0], cast16.output[0]
        users = consumers.get(mid, [])
        for back in [u for u in users if cast_to(u) == onnx.TensorProto.FLOAT]:
            for user in consumers.get(back.output[0], []):
                user.input[:] = [src if i == back.output[0] else i for i in user.input]
                consumers.setdefault(src, []).append(user)
            if back.output[0] in outputs:
                continue  # a graph output keeps its name
            removed.append(back)
            bypassed += 1
        if all(u in removed for u in users) and mid not in outputs:
            removed.append(cast16)
    for node in removed:
        graph.node.remove(node)
    keep = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    stale = [v for v in graph.value_info if v.name not in keep]
    for v in stale:
        graph.value_info.remove(v)
    return bypassed


def convert_with_ranges(
    proto: Any, ctx: Any, source: Any, *, keep_io_types: bool = True, op_block: Iterable[str] = ()
) -> tuple[Any, dict[str, Any]]:
    """The fp16 model, with the nodes whose recorded ranges would overflow fp16 kept in fp32 (a component of a
    pipeline: vopt.quant.overflow), and what the report says about it: those nodes and why, and the op types
    the block list kept."""
    from vopt.quant.overflow import fp16_fallback

    kept, how = fp16_fallback(ctx, source, getattr(ctx, "ranges_from", None))
    converted, ops = convert_to_fp16(proto, keep_io_types=keep_io_types, op_block=op_block, node_block=kept)
    present = {n.op_type for n in proto.graph.node}
    return converted, {
        "kept_fp32_nodes": kept,
        "ranges": how,
        "fp32_op_types": sorted(set(ops) & present),
        "keep_io_types": keep_io_types,
    }
