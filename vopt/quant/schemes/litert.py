"""litert-int8: static int8 weights and activations for a LiteRT (.tflite) model, with ai-edge-quantizer,
calibrated on vopt's images. Runs after compile (the tflite target converts PyTorch to an fp32 flatbuffer
first), so the quantize stage's calibration fingerprint, held-out check, gates and speed check apply to LiteRT
as to every other target."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, first_line
from vopt.quant.schemes.base import QuantTypes, Scheme


class LitertInt8Scheme(Scheme):
    name = "litert-int8"
    precisions = ("int8",)
    input_formats = ("tflite",)
    output_format = "tflite"
    types = {"int8": QuantTypes("int8", "int8", True)}
    requires = (("ai_edge_quantizer", "ai-edge-quantizer", "tflite"),)
    calibrates = True
    tools = ("ai-edge-quantizer", "ai-edge-litert")

    def output_name(self) -> str:
        return "model.tflite"

    def calibrate(self, model: Path, calib: Any, advance: Callable[[int], None]) -> int:
        """Calibration feeds in the converted graph's fixed batch (litert-torch keeps the example's batch)."""
        from vopt.runtimes.litert import signature

        ins, _ = signature(model)
        name, batch = ins[0]["name"], ins[0]["shape"][0]
        self._feeds: list[dict[str, Any]] = []
        for images in calib.batches():
            for i in range(0, images.shape[0] - batch + 1, batch):
                self._feeds.append({name: images[i : i + batch].astype("float32")})
            advance(images.shape[0])
        self.info["calibration"] = {
            "method": "minmax (ai-edge-quantizer static_wi8_ai8)",
            "feeds": len(self._feeds),
        }
        return len(self._feeds) * batch

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        from ai_edge_quantizer import quantizer, recipe

        from vopt.runtimes.litert import stdout_to_stderr

        qt = quantizer.Quantizer(str(model), recipe.static_wi8_ai8())
        try:
            with stdout_to_stderr():
                result = qt.calibrate({"serving_default": self._feeds}, num_threads=2)
                qt.quantize(result, enable_progress_bar=False, enable_progress_report=False).export_model(
                    str(out), overwrite=True
                )
        except Exception as exc:
            raise BuildError(
                f"ai-edge-quantizer could not quantize to int8: {first_line(exc)}", stage="quantize"
            ) from exc
        return out
