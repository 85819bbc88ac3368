"""fp16 with fp32 inputs and outputs (webgpu, rocm, `quantize: {precision: fp16}` anywhere): onnxruntime's
float16 converter with keep_io_types and a block list, driven by recorded ranges. Calibration runs the fp32
model on the calibration data (images, tensors, or a pipeline component's recorded feeds) with every
intermediate tensor as an output, and each node whose input or output went beyond what fp16 holds with
headroom stays fp32 (vopt.quant.overflow); the report lists those nodes and why. onnxconverter-common's output
failed to load in ORT for DETR, RT-DETR, Swin and DINOv2."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from vopt.quant.schemes.base import Scheme, match_nodes, onnx_node_names

if TYPE_CHECKING:
    from vopt.quant.calibration import CalibrationSet


class Fp16Scheme(Scheme):
    name = "fp16"
    precisions = ("fp16",)
    default_for = ("fp16",)
    calibrates = True  # the value ranges that decide which nodes stay fp32

    def calibrate(self, model: Path, calib: CalibrationSet, advance: Callable[[int], None]) -> int:
        import onnx

        from vopt.quant.calibration import split_static
        from vopt.quant.overflow import overflow_nodes, record_ranges
        from vopt.quant.schemes.ort_qdq import static_batch_of

        graph = onnx.load(str(model), load_external_data=False).graph
        name = graph.input[0].name
        feeds = []
        for batch in split_static(calib.batches(), static_batch_of(model)):
            feeds.append(batch if isinstance(batch, dict) else {name: batch})
            advance(1 if isinstance(batch, dict) else len(batch))
        ranges = record_ranges(model, feeds)
        self.overflow = overflow_nodes(model, ranges)
        self.ranges_how = (
            f"ranges of {len(ranges)} tensors over {len(feeds)} calibration batches ({calib.describe()})"
        )
        return calib.count()

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        import onnx

        from vopt.quant.fp16 import convert_to_fp16

        proto = onnx.load(str(model))
        nodes = sorted(set(match_nodes(onnx_node_names(model), self.excluded_globs())) | set(exclude_nodes))
        overflow = dict(getattr(self, "overflow", {}))
        why = {n: "kept in float by the recipe or the family" for n in nodes}
        why.update(overflow)  # the recorded range is the more telling reason
        converted, op_block = convert_to_fp16(proto, op_block=self.excluded_ops(), node_block=sorted(why))
        onnx.save(converted, str(out))
        self.info.update(
            kept_fp32_nodes=why,
            ranges=getattr(self, "ranges_how", "no calibration: ranges not recorded"),
            overflow_nodes=len(overflow),
            keep_io_types=True,
            fp32_op_types=sorted(set(op_block) & {n.op_type for n in proto.graph.node}),
        )
        return out
