"""Quantization schemes, one module each, imported lazily by name."""

from __future__ import annotations

from typing import Any

from vopt.registry import load_object

SCHEMES: dict[str, str] = {
    "ort-qdq": "vopt.quant.schemes.ort_qdq:OrtQdqScheme",
    "trt-qdq": "vopt.quant.schemes.ort_qdq:TensorRtQdqScheme",
    "qnn-qdq": "vopt.quant.schemes.qnn:QnnQdqScheme",
    "nncf": "vopt.quant.schemes.nncf_ov:NncfScheme",
    "coreml-weights": "vopt.quant.schemes.coreml:CoreMlWeightScheme",
    "fp16": "vopt.quant.schemes.fp16:Fp16Scheme",
    "int4-weight": "vopt.quant.schemes.int4:Int4WeightScheme",
}

# Each target's default scheme. A target class may override it with a `quant_scheme` attribute.
TARGET_DEFAULTS: dict[str, str | None] = {
    "cpu": "ort-qdq",
    "tensorrt": "trt-qdq",
    "qnn": "qnn-qdq",
    "openvino": "nncf",
    "coreml": "coreml-weights",
    "webgpu": "fp16",
    "rocm": "fp16",
    "webnn": "ort-qdq",
    "tflite": None,
}

# What each scheme can produce, first = its default; and its fixed defaults (light: no imports).
PRECISIONS: dict[str, tuple[str, ...]] = {
    "ort-qdq": ("int8", "int16"),
    "trt-qdq": ("int8",),
    "qnn-qdq": ("int8", "int16"),
    "nncf": ("int8",),
    "coreml-weights": ("int8",),
    "fp16": ("fp16",),
    "int4-weight": ("int4",),
}


def default_scheme(target: Any) -> str | None:
    return getattr(target, "quant_scheme", None) or TARGET_DEFAULTS.get(target.name)


def get_scheme(name: str) -> Any:
    return load_object(SCHEMES[name])
