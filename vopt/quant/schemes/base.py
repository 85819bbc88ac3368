"""What a scheme provides. The stage drives: prepare -> calibrate -> quantize(exclusions) [-> fallback]."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from vopt.quant.calibration import CalibrationSet
from vopt.quant.config import QuantizeConfig


class Scheme:
    name: ClassVar[str]
    output_format: ClassVar[str] = "onnx"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    calibrates: ClassVar[bool] = True
    # QDQ schemes can rank layers by sensitivity and keep the worst in float.
    ranks_layers: ClassVar[bool] = False
    tools: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")

    def __init__(self, cfg: QuantizeConfig, work: Path, family: Any):
        self.cfg = cfg
        self.work = work
        self.family = family
        self.info: dict[str, Any] = {}
        self.warnings: list[str] = []

    def prepare(self, src: Path) -> Path:
        """The float model this scheme quantizes (e.g. static shapes + ORT pre-processing)."""
        return src

    def calibrate(self, model: Path, calib: CalibrationSet, advance: Callable[[int], None]) -> int:
        """Collect ranges; returns the number of samples seen."""
        return 0

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        raise NotImplementedError

    def candidates(self, quantized: Path) -> list[str]:
        """Names of the layers that were quantized (what the fallback may move back to float)."""
        return []

    def rank(self, model: Path, quantized: Path, calib: CalibrationSet, samples: int,
             rank_by: str) -> tuple[list[str], list[dict[str, Any]]]:
        """The quantized layers and their sensitivity table, worst first (schemes with ranks_layers)."""
        from vopt.quant.sensitivity import rank_layers

        candidates = self.candidates(quantized)
        return candidates, rank_layers(model, quantized, candidates, calib, samples, self.work, rank_by=rank_by)

    def output_name(self) -> str:
        return "model.onnx"

    def excluded_ops(self) -> list[str]:
        return sorted({*self.cfg.exclude.op_types, *getattr(self.family, "quant_exclude_ops", ())})

    def excluded_globs(self) -> list[str]:
        return [*self.cfg.exclude.nodes, *getattr(self.family, "quant_exclude_nodes", ())]


def match_nodes(names: list[str], globs: list[str]) -> list[str]:
    """Node names matching any glob (exact names match too, even with glob characters in them)."""
    import fnmatch

    return [n for n in names if any(n == g or fnmatch.fnmatchcase(n, g) for g in globs)]


def onnx_node_names(path: Path) -> list[str]:
    import onnx

    return [n.name for n in onnx.load(str(path), load_external_data=False).graph.node]


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """onnxruntime's quantizers log advice and per-node INFO lines on the root logger, and NNCF draws progress
    bars on stdout (which `--json` owns): vopt reports instead, and anything printed goes to stderr."""
    loggers = [logging.getLogger(), logging.getLogger("nncf")]
    old = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for lg, level in zip(loggers, old, strict=True):
            lg.setLevel(level)
