"""fp16 with fp32 inputs and outputs (webgpu, rocm): onnxruntime's float16 converter with keep_io_types
and a block list. onnxconverter-common's output failed to load in ORT for DETR, RT-DETR, Swin and DINOv2."""

from __future__ import annotations

from pathlib import Path

from vopt.quant.schemes.base import Scheme, match_nodes, onnx_node_names

# Ops whose fp16 versions overflow or lose too much (float-max constants, big reductions).
DEFAULT_OP_BLOCK = ["Range", "TopK", "NonMaxSuppression", "RandomNormalLike", "RandomUniformLike"]


class Fp16Scheme(Scheme):
    name = "fp16"
    calibrates = False

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        import onnx
        from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

        proto = onnx.load(str(model))
        op_block = sorted({*DEFAULT_OP_BLOCK_LIST, *DEFAULT_OP_BLOCK, *self.excluded_ops()})
        nodes = sorted(set(match_nodes(onnx_node_names(model), self.excluded_globs())) | set(exclude_nodes))
        converted = convert_float_to_float16(proto, keep_io_types=True, op_block_list=op_block, node_block_list=nodes)
        onnx.save(converted, str(out))
        self.info.update(kept_fp32_nodes=nodes, keep_io_types=True,
                         fp32_op_types=sorted(set(op_block) & {n.op_type for n in proto.graph.node}))
        return out
