"""int4 weight-only quantization of transformer MatMuls (ORT's MatMulNBits): weights in 4-bit blocks,
activations stay float. No calibration needed."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import missing_extra
from vopt.quant.schemes.base import Scheme, match_nodes, onnx_node_names, quiet_logs


class Int4WeightScheme(Scheme):
    name = "int4-weight"
    calibrates = False

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        import onnx

        try:
            from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
        except ImportError as exc:  # it needs onnx-ir
            raise missing_extra("onnx-ir", "int4", "int4 weight-only quantization") from exc

        nodes = sorted(set(match_nodes(onnx_node_names(model), self.excluded_globs())) | set(exclude_nodes))
        block = int(self.cfg.options.get("block_size", 32))
        quantizer = MatMulNBitsQuantizer(
            onnx.load(str(model)), bits=4, block_size=block, is_symmetric=bool(self.cfg.options.get("symmetric", True)),
            accuracy_level=self.cfg.options.get("accuracy_level"), nodes_to_exclude=nodes,
        )
        with quiet_logs():
            quantizer.process()
        quantizer.model.save_model_to_file(str(out))
        graph = onnx.load(str(out), load_external_data=False).graph
        n4 = sum(1 for n in graph.node if n.op_type == "MatMulNBits")
        left = sum(1 for n in graph.node if n.op_type == "MatMul")
        self.info.update(matmul_nbits=n4, float_matmuls=left, block_size=block)
        if n4 == 0:
            self.warnings.append("int4: no MatMul with constant weights was quantized (nothing for MatMulNBits in this model)")
        return out
