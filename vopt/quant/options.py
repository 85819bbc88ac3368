"""quantize.options: the scheme-specific settings, checked at plan time (a typo must not surface after
calibration as a KeyError deep inside a quantizer)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from vopt.errors import RecipeError

_QDQ = ("ort-qdq", "trt-qdq", "qnn-qdq")
_RANKING = (*_QDQ, "nncf")  # schemes the accuracy-aware fallback runs on


@dataclass(frozen=True)
class Option:
    schemes: tuple[str, ...]
    allowed: str  # what the error message says is allowed
    check: Callable[[Any], bool]


def _is_bool(v: Any) -> bool:
    return isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _one_of(*values: Any) -> Callable[[Any], bool]:
    return lambda v: any(type(v) is type(x) and v == x for x in values)


def _names(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


OPTIONS: dict[str, Option] = {
    "static_shapes": Option((*_QDQ, "nncf"), "true or false", _is_bool),
    "rank_by": Option(_RANKING, "drop, sqnr or measured", _one_of("drop", "sqnr", "measured")),
    "fallback_to": Option(_RANKING, "float (any fallback scheme) or int16 (ort-qdq, trt-qdq)", _one_of("float", "int16")),
    "int16_nodes": Option(("ort-qdq", "trt-qdq"), "a list of node names", _names),
    "preset": Option(("nncf",), "performance or mixed", _one_of("performance", "mixed")),
    "palettize_bits": Option(("coreml-weights",), "1, 2, 3, 4, 6 or 8", _one_of(1, 2, 3, 4, 6, 8)),
    # MatMulNBits takes power-of-two blocks of at least 16.
    "block_size": Option(("int4-weight",), "a power of two >= 16 (16, 32, 64, 128, ...)",
                         lambda v: _is_int(v) and v >= 16 and v & (v - 1) == 0),
    "symmetric": Option(("int4-weight",), "true or false", _is_bool),
    "accuracy_level": Option(("int4-weight",), "0, 1, 2, 3 or 4", _one_of(0, 1, 2, 3, 4)),
}


def check_options(options: dict[str, Any], scheme: str) -> None:
    """RecipeError naming `quantize.options.<key>` and what is allowed, for any unknown key or bad value."""
    known = sorted(k for k, o in OPTIONS.items() if scheme in o.schemes)
    for key, value in options.items():
        where = f"quantize.options.{key}"
        opt = OPTIONS.get(key)
        if opt is None:
            raise RecipeError(f"{where}: unknown option; scheme '{scheme}' takes {', '.join(known) or 'no options'}")
        if scheme not in opt.schemes:
            raise RecipeError(f"{where}: applies to scheme {', '.join(opt.schemes)}, not '{scheme}'; "
                              f"'{scheme}' takes {', '.join(known) or 'no options'}")
        if not opt.check(value):
            raise RecipeError(f"{where}: {value!r} is not allowed; use {opt.allowed}")
        if key == "fallback_to" and value == "int16" and scheme not in ("ort-qdq", "trt-qdq"):
            raise RecipeError(f"{where}: int16 is not available for scheme '{scheme}' (float everywhere the fallback "
                              "runs; int16 for ort-qdq and trt-qdq)")
