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
    return converted, ops
