"""Small helpers the format plugins share: dtype names as `vopt inspect` prints them, and the preprocessing
contract vopt embeds in an artifact."""

from __future__ import annotations

import json
from typing import Any

from vopt.core.artifact import Preprocess

_DTYPE_NAMES = {
    "float32": "fp32",
    "float16": "fp16",
    "f32": "fp32",
    "f16": "fp16",
    "bfloat16": "bf16",
    "bf16": "bf16",
    "i8": "int8",
    "u8": "uint8",
    "i32": "int32",
    "i64": "int64",
    "u16": "uint16",
    "i16": "int16",
    "boolean": "bool",
}


def dtype_name(name: str) -> str:
    return _DTYPE_NAMES.get(name, name)


def preprocess_from(meta: dict[str, Any], shape: list[int | str]) -> Preprocess:
    """The contract vopt embedded in the artifact, else the input's spatial size with ImageNet defaults."""
    if "vopt.preprocess" in meta:
        return Preprocess.model_validate(json.loads(meta["vopt.preprocess"]))
    hw = [d for d in shape[2:4] if isinstance(d, int)] if len(shape) == 4 else []
    return Preprocess(size=hw if len(hw) == 2 else [224, 224])
