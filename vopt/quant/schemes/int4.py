"""int4 weight-only quantization of transformer MatMuls (ORT's MatMulNBits): weights in 4-bit blocks,
activations stay float. No calibration needed."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from vopt.errors import missing_extra
from vopt.quant.schemes.base import Scheme, SchemeOptions, match_nodes, onnx_node_names, quiet_logs


class Int4WeightOptions(SchemeOptions):
    block_size: int = Field(default=32, description="Weights per 4-bit block: a power of two >= 16.")
    symmetric: bool = Field(default=True, description="Symmetric blocks (no zero points).")
    accuracy_level: Literal[0, 1, 2, 3, 4] | None = Field(
        default=None, description="MatMulNBits accuracy_level: the compute type of the int4 kernel."
    )

    @field_validator("block_size")
    @classmethod
    def _power_of_two(cls, v: int) -> int:
        if v < 16 or v & (v - 1):  # MatMulNBits takes power-of-two blocks of at least 16
            raise ValueError("a power of two >= 16 (16, 32, 64, 128, ...)")
        return v


class Int4WeightScheme(Scheme):
    name = "int4-weight"
    precisions = ("int4",)
    default_for = ("int4",)
    requires = (("onnx_ir", "onnx-ir", "int4"),)
    calibrates = False
    Options = Int4WeightOptions
    tools = (
        "onnx",
        "onnxruntime",
        "onnx-ir",
    )  # MatMulNBitsQuantizer runs on onnx-ir: its version changes the bytes

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        import onnx

        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        except ImportError as exc:  # it needs onnx-ir
            raise missing_extra("onnx-ir", "int4", "int4 weight-only quantization") from exc

        nodes = sorted(set(match_nodes(onnx_node_names(model), self.excluded_globs())) | set(exclude_nodes))
        block = self.options.block_size
        proto = onnx.load(str(model))
        converted = gemm_to_matmul(proto, set(nodes))
        quantizer = MatMulNBitsQuantizer(
            proto,
            bits=4,
            block_size=block,
            is_symmetric=self.options.symmetric,
            accuracy_level=self.options.accuracy_level,
            nodes_to_exclude=nodes,
        )
        with quiet_logs():
            quantizer.process()
        quantizer.model.save_model_to_file(str(out))
        graph = onnx.load(str(out), load_external_data=False).graph
        n4 = sum(1 for n in graph.node if n.op_type == "MatMulNBits")
        left = sum(1 for n in graph.node if n.op_type == "MatMul")
        self.info.update(matmul_nbits=n4, float_matmuls=left, block_size=block, gemm_as_matmul=converted)
        if n4 == 0:
            self.warnings.append(
                "int4: no MatMul with constant weights was quantized (nothing for MatMulNBits in this model)"
            )
        return out


def gemm_to_matmul(proto, skip: set[str]) -> int:
    """Linear layers often export (after simplification) as Gemm, which MatMulNBits does not take:
    rewrite Gemm(A, const B, C) as MatMul(A, B') + Add(C). The MatMul keeps the Gemm's name."""
    from onnx import helper, numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    new_nodes = []
    count = 0
    for node in proto.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        plain = (
            attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0 and not attrs.get("transA", 0)
        )
        if node.op_type != "Gemm" or node.name in skip or not plain or node.input[1] not in inits:
            new_nodes.append(node)
            continue
        b = numpy_helper.to_array(inits[node.input[1]])
        if attrs.get("transB", 0):
            b = b.T.copy()
        b_name = f"{node.input[1]}_matmul"
        proto.graph.initializer.append(numpy_helper.from_array(b, b_name))
        has_bias = len(node.input) > 2 and node.input[2]
        mm_out = f"{node.output[0]}_matmul" if has_bias else node.output[0]
        new_nodes.append(helper.make_node("MatMul", [node.input[0], b_name], [mm_out], name=node.name))
        if has_bias:
            new_nodes.append(
                helper.make_node("Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_bias")
            )
        count += 1
    del proto.graph.node[:]
    proto.graph.node.extend(new_nodes)
    used = {i for n in proto.graph.node for i in n.input}
    keep = [i for i in proto.graph.initializer if i.name in used]
    del proto.graph.initializer[:]
    proto.graph.initializer.extend(keep)
    return count
