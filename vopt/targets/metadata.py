"""vopt metadata embedded in every artifact, so a deployed file says where it came from."""

from __future__ import annotations

import json
from typing import Any

import vopt
from vopt.formats.onnx import set_onnx_metadata as set_onnx_metadata  # targets write ONNX metadata here


def effective_precision(artifact: Any, setting: str, built: str | None = None) -> str:
    """What the artifact really is, not what the compile section asked for.

    The quantize stage's precision (`artifact.meta["quantized"]["precision"]`) wins over the compile setting;
    `built` is what the compile step saw or built (e.g. the QDQ it found, or TensorRT's flags with the int8 it
    adds for Q/DQ) and is kept when it already names the quantized precision ("fp16+int8" for int8).
    Idempotent: passing its own answer back as `built` returns it unchanged."""
    meta = (artifact.meta or {}) if artifact is not None else {}
    quantized = (meta.get("quantized") or {}).get("precision")
    base = built or setting
    if quantized and quantized != "fp32" and quantized not in base.split("+"):
        return str(quantized)
    return base


def qdq_precision(proto: Any) -> str | None:
    """int8 / int16 / int4 from the QuantizeLinear zero points (or DQ-only weights) of an ONNX graph;
    None without Q/DQ."""
    import onnx

    inits = {i.name: i.data_type for i in proto.graph.initializer}
    bits = set()
    for node in proto.graph.node:
        zero_point = node.input[2] if len(node.input) > 2 else None
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") and zero_point in inits:
            bits.add(inits[node.input[2]])
        elif node.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul", "MatMulNBits"):
            bits.add(onnx.TensorProto.UINT8 if node.op_type != "MatMulNBits" else onnx.TensorProto.INT4)
    if not bits:
        return None
    t = onnx.TensorProto
    if bits & {t.UINT16, t.INT16}:
        return "int16"
    if bits & {t.UINT8, t.INT8}:
        return "int8"
    if bits & {t.UINT4, t.INT4}:
        return "int4"
    return None


def artifact_metadata(artifact: Any, recipe_name: str, target: str, precision: str) -> dict[str, str]:
    """The `vopt.*` keys. `precision` is what the artifact is: the compile step works it out once
    (effective_precision) and the same value goes into the artifact's meta, the manifest and the report."""
    meta = {
        "vopt.version": vopt.__version__,
        "vopt.recipe": recipe_name,
        "vopt.target": target,
        "vopt.precision": precision,
        "vopt.family": str(artifact.meta.get("family")),
        "vopt.task": str(artifact.meta.get("task")),
        "vopt.preprocess": json.dumps(artifact.preprocess.model_dump()),
        "vopt.random_weights": str(bool(artifact.meta.get("random_weights"))).lower(),
    }
    if artifact.meta.get("embedded_preprocessing"):
        meta["vopt.embedded_preprocessing"] = json.dumps(artifact.meta["embedded_preprocessing"])
    labels = artifact.meta.get("labels")
    if labels:
        meta["vopt.labels"] = json.dumps(labels)
    return meta


