"""fp16 with fp32 inputs and outputs (webgpu, rocm): onnxruntime's float16 converter with keep_io_types
and a block list. onnxconverter-common's output failed to load in ORT for DETR, RT-DETR, Swin and DINOv2."""

from __future__ import annotations

from pathlib import Path

from vopt.quant.schemes.base import Scheme, match_nodes, onnx_node_names


class Fp16Scheme(Scheme):
    name = "fp16"
    precisions = ("fp16",)
    default_for = ("fp16",)
    calibrates = False

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        import onnx

        from vopt.quant.fp16 import convert_to_fp16

        proto = onnx.load(str(model))
        nodes = sorted(set(match_nodes(onnx_node_names(model), self.excluded_globs())) | set(exclude_nodes))
        converted, op_block = convert_to_fp16(proto, op_block=self.excluded_ops(), node_block=nodes)
        onnx.save(converted, str(out))
        self.info.update(
            kept_fp32_nodes=nodes,
            keep_io_types=True,
            fp32_op_types=sorted(set(op_block) & {n.op_type for n in proto.graph.node}),
        )
        return out
