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


# Python packages each scheme needs beyond the core: (import name, distribution, pip extra).
REQUIRES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "qnn-qdq": (),  # the QNN QDQ config ships with onnxruntime itself
    "nncf": (("openvino", "openvino", "openvino"), ("nncf", "nncf", "openvino")),
    "coreml-weights": (("coremltools", "coremltools", "coreml"),),
    "int4-weight": (("onnx_ir", "onnx-ir", "int4"),),
}


def check_requirements(scheme: str) -> None:
    """Name a missing package before any work starts (plan time), not after load and export."""
    import importlib.util

    from vopt.errors import missing_extra

    for module, dist, extra in REQUIRES.get(scheme, ()):
        if importlib.util.find_spec(module) is None:
            raise missing_extra(dist, extra, f"quantize scheme '{scheme}'")


def default_scheme(target: Any) -> str | None:
    """The target's own scheme (its `quant_scheme` class attribute); None when it has no quantizer."""
    return target.quant_scheme


def get_scheme(name: str) -> Any:
    return load_object(SCHEMES[name])
