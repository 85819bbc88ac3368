"""One shape for every profiler's answer: timed ops, summarised by node and by op type."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

# Kernel or op names that mean the op computed in integer arithmetic.
_INT_MARKERS = ("I8", "U8", "INT8", "UINT8")


@dataclass
class OpTime:
    node: str
    op_type: str
    ms: float  # mean time per inference
    precision: str  # int8 | fp16 | bf16 | fp32 | int64 | other: what the kernel computed in
    device: str  # the execution provider or plugin kernel that ran it
    kernel: str = ""  # the runtime's own kernel name, when it reports one


@dataclass
class Profile:
    runtime: str
    runs: int
    ops: list[OpTime]
    total_ms: float  # mean wall time per inference, measured around the runs
    notes: list[str] = field(default_factory=list)

    def by_op_type(self) -> list[dict[str, Any]]:
        groups: dict[str, dict[str, Any]] = defaultdict(lambda: {"ms": 0.0, "count": 0, "precisions": set()})
        for op in self.ops:
            g = groups[op.op_type]
            g["ms"] += op.ms
            g["count"] += 1
            g["precisions"].add(op.precision)
        op_total = sum(op.ms for op in self.ops) or 1.0
        rows = [
            {
                "op_type": k,
                "ms": round(v["ms"], 4),
                "count": v["count"],
                "percent": round(100 * v["ms"] / op_total, 2),
                "precisions": sorted(v["precisions"]),
            }
            for k, v in groups.items()
        ]
        return sorted(rows, key=lambda r: -r["ms"])

    def precision_mix(self) -> dict[str, dict[str, float]]:
        """Share of op time and op count per compute precision: what really ran in int8 and what fell back."""
        op_total = sum(op.ms for op in self.ops) or 1.0
        mix: dict[str, dict[str, float]] = defaultdict(lambda: {"ops": 0, "ms": 0.0})
        for op in self.ops:
            mix[op.precision]["ops"] += 1
            mix[op.precision]["ms"] += op.ms
        return {
            k: {"ops": int(v["ops"]), "ms": round(v["ms"], 4), "percent": round(100 * v["ms"] / op_total, 2)}
            for k, v in sorted(mix.items(), key=lambda kv: -kv[1]["ms"])
        }

    def devices(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for op in self.ops:
            counts[op.device] += 1
        return dict(counts)

    def top(self, n: int) -> list[OpTime]:
        return sorted(self.ops, key=lambda o: -o.ms)[:n]

    def to_dict(self, top: int = 20) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "runs": self.runs,
            "total_ms": round(self.total_ms, 4),
            "op_ms": round(sum(op.ms for op in self.ops), 4),
            "ops": len(self.ops),
            "top": [asdict(o) | {"ms": round(o.ms, 4)} for o in self.top(top)],
            "by_op_type": self.by_op_type(),
            "precision_mix": self.precision_mix(),
            "devices": self.devices(),
            "notes": self.notes,
        }


def precision_from_kernel(kernel: str) -> str:
    """OpenVINO exec types look like 'brgconv_avx512_amx_I8' or 'jit_avx512_FP32'."""
    k = kernel.upper()
    if any(k.endswith(m) or f"_{m}_" in k for m in _INT_MARKERS):
        return "int8"
    for marker, name in (
        ("BF16", "bf16"),
        ("FP16", "fp16"),
        ("F16", "fp16"),
        ("FP32", "fp32"),
        ("F32", "fp32"),
        ("I32", "int32"),
        ("I64", "int64"),
    ):
        if k.endswith(marker) or f"_{marker}_" in k:
            return name
    return "other"


def precision_from_types(op_type: str, input_types: list[str]) -> str:
    """ORT reports each node's input element types; an integer matmul/conv computed in int8."""
    if op_type in ("QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear"):
        return "convert"
    types = set(input_types)
    if types & {"int8", "uint8"}:
        return "int8"
    if types & {"int16", "uint16"}:
        return "int16"
    if "float16" in types:
        return "fp16"
    if "bfloat16" in types:
        return "bf16"
    if "float" in types or "float32" in types:
        return "fp32"
    return "other"
