"""What a scheme provides. The stage drives: prepare -> calibrate -> quantize(exclusions) [-> fallback]."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from vopt.quant.calibration import CalibrationSet
    from vopt.quant.config import QuantizeConfig


class SchemeOptions(BaseModel):
    """`quantize.options` of a scheme with no options. Strict: `true` is not 1, and `'8'` is not 8."""

    model_config = ConfigDict(extra="forbid", strict=True)


class RankingOptions(SchemeOptions):
    """Options of the schemes whose layers the accuracy-aware fallback can rank (`ranks_layers`)."""

    rank_by: Literal["drop", "sqnr", "measured"] = Field(
        default="drop", description="How the fallback ranks layers: SQNR drop, SQNR, or measured gate effect."
    )
    fallback_to: Literal["float", "int16"] = Field(
        default="float", description="What the fallback moves layers to; int16 where the scheme supports it."
    )
    float_if_slower: bool = Field(
        default=False,
        description="Profile the float and the int8 model layer by layer on the target's runtime (vopt "
        "profile's data); the layers whose int8 kernel is slower than float stay float when the whole "
        "artifact then runs at least as fast, timed interleaved, and holds the check's gates. The search "
        "weighs each layer's measured time. The report's `speed_layers` and `kept_float` say which layers "
        "were kept float for speed and which for accuracy.",
    )


@dataclass(frozen=True)
class QuantTypes:
    """A scheme's default activation type, weight type and per-channel weights for one precision."""

    activation: str | None = None
    weight: str | None = None
    per_channel: bool = True


class Scheme:
    """One quantization scheme: its facts (class attributes, read at plan time without heavy imports) and the
    work (prepare, calibrate, quantize). Registered by name in vopt.registry.SCHEMES."""

    name: ClassVar[str]
    # What it makes; the first is the default when the recipe names no precision.
    precisions: ClassVar[tuple[str, ...]] = ("int8",)
    # Precisions it makes on every target, unless the recipe names a scheme (fp16, int4).
    default_for: ClassVar[tuple[str, ...]] = ()
    output_format: ClassVar[str] = "onnx"
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    # Default activation/weight types and per-channel, by precision; a recipe's own settings win.
    types: ClassVar[dict[str, QuantTypes]] = {}
    # Python packages it needs beyond the core: (import name, distribution, pip extra), checked at plan time.
    requires: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    calibrates: ClassVar[bool] = True
    # QDQ schemes can rank layers by sensitivity and keep the worst in float (auto_fallback).
    ranks_layers: ClassVar[bool] = False
    # What the fallback may move a layer to (`options.fallback_to`); empty when it cannot rank layers.
    fallback_precisions: ClassVar[tuple[str, ...]] = ()
    tools: ClassVar[tuple[str, ...]] = ("onnx", "onnxruntime")
    # quantize.search: other values of the scheme's own options it may try on a gate miss, besides the
    # calibration methods (each a dict of Options fields).
    search_settings: ClassVar[tuple[dict[str, Any], ...]] = ()
    # Its output is an ONNX QDQ graph that the search's float-island probe edits directly; a scheme that
    # ranks layers without one gives an ORT QDQ proxy of the same model instead (`qdq_proxy`).
    qdq_output: ClassVar[bool] = False
    # The typed `quantize.options`, validated when the recipe loads.
    Options: ClassVar[type[SchemeOptions]] = SchemeOptions

    def __init__(self, cfg: QuantizeConfig, work: Path, family: Any):
        self.cfg = cfg
        self.work = work
        self.family = family
        self.options: Any = type(self).Options.model_validate(cfg.options)
        self.info: dict[str, Any] = {}
        self.warnings: list[str] = []

    def applies(self, setting: dict[str, Any]) -> bool:
        """Whether one of `search_settings` can change anything for this model (the search skips it if
        not)."""
        return True

    def layers_follow(self, setting: dict[str, Any]) -> bool:
        """Whether the search may go on to layer changes from one of `search_settings` that does not hold the
        gate alone. False where that setting makes each layer trial a full requantization."""
        return True

    @classmethod
    def default_types(cls, precision: str) -> QuantTypes:
        return cls.types.get(precision, QuantTypes())

    @classmethod
    def host_facts(cls, options: dict[str, Any], target: Any) -> dict[str, Any]:
        """Facts about the build machine that this scheme's defaults depend on, resolved at plan time. They go
        into the quantize step's config, and so into its cache key: a cache shared by two CPUs must not serve
        one CPU's choice to the other."""
        return {}

    @classmethod
    def check_requirements(cls) -> None:
        """Name a missing package before any work starts (plan time), not after load and export."""
        import importlib.util

        from vopt.errors import missing_extra

        for module, dist, extra in cls.requires:
            if importlib.util.find_spec(module) is None:
                raise missing_extra(dist, extra, f"quantize scheme '{cls.name}'")

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

    def rank(
        self, model: Path, quantized: Path, calib: CalibrationSet, samples: int, rank_by: str
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """The quantized layers and their sensitivity table, worst first (schemes with ranks_layers)."""
        from vopt.quant.sensitivity import rank_layers

        candidates = self.candidates(quantized)
        return candidates, rank_layers(
            model, quantized, candidates, calib, samples, self.work, rank_by=rank_by
        )

    def qdq_proxy(
        self, model: Path, calib: CalibrationSet, advance: Callable[[int], None] | None = None
    ) -> tuple[Scheme, Path]:
        """An ORT QDQ scheme calibrated on the same data, and its prepared float model: what layers are ranked
        on when this scheme's own output is not a QDQ graph (schemes with ranks_layers and not qdq_output)."""
        raise NotImplementedError(f"scheme '{self.name}' has no QDQ proxy to rank layers on")

    def saved_calibration(self) -> Any:
        """What `calibrate` collected, for `restore_calibration` (the search switches calibration methods
        without calibrating again). None when there is nothing to keep."""
        return None

    def restore_calibration(self, saved: Any) -> None:
        """Make `saved` (from `saved_calibration`) the ranges `quantize` uses."""

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
