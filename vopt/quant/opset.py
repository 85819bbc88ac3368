"""Opset upgrades a quantization scheme needs: QDQ with per-channel weights writes DequantizeLinear with an
`axis` attribute, which exists from opset 13. Models exported at opset <= 12 (e.g. PaddlePaddle's paddle2onnx
PP-OCR files) are upgraded first with onnx's own version converter; otherwise ORT rejects the result with a
raw INVALID_GRAPH 'Unrecognized attribute: axis for operator DequantizeLinear'."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import BuildError, first_line

QDQ_MIN_OPSET = 13


def default_opset(path: Path) -> int:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    return next((int(o.version) for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)


def upgrade_opset(src: Path, dst: Path, minimum: int = QDQ_MIN_OPSET) -> tuple[int, int] | None:
    """Write `src` converted to opset `minimum` at `dst` when it is older; (old, new), or None if not
    needed."""
    import onnx
    from onnx import version_converter

    old = default_opset(src)
    if old >= minimum:
        return None
    try:
        converted = version_converter.convert_version(onnx.load(str(src)), minimum)
        onnx.checker.check_model(converted)
    except Exception as exc:
        first = first_line(exc, limit=200)
        raise BuildError(
            f"the model is opset {old}; QDQ quantization needs opset >= {minimum} and onnx's version "
            f"converter failed: {first} (re-export the model at opset {minimum} or newer)",
            stage="quantize",
        ) from None
    onnx.save(converted, str(dst))
    return old, minimum
