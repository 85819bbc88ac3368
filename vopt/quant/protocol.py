"""What a quantize step offers the algorithms that drive it: the layer fallback (vopt.quant.fallback), the
accuracy-aware search (vopt.quant.search) and whatever comes next. NNCF's accuracy loop takes a
`validation_fn` and knows nothing of its caller; this is that function with the rest such a loop needs
(quantize through the step's scheme, check on the step's held-out images, time two results on the target's
runtime, say what it is doing). The quantize stage implements it; an algorithm uses nothing else of the stage.

An algorithm returns what it found (`LoopResult`); the stage writes its report, so no algorithm reaches into
the stage's report or context."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np

    from vopt.core.artifact import Artifact
    from vopt.quant.calibration import CalibrationSet
    from vopt.quant.config import QuantizeConfig
    from vopt.quant.schemes.base import Scheme
    from vopt.runtimes.base import Feeds

# A check's result as the report keeps it: status, metrics, task metrics, and `gates` (one dict per gate with
# metric, value, condition, threshold, passed). None where the quantized artifact cannot run here.
CheckResult = dict[str, Any]


class QuantizeSession(Protocol):
    """One quantize step, as an accuracy loop sees it."""

    cfg: QuantizeConfig  # the step's resolved settings (its cache key)
    scheme: Scheme  # the step's scheme: quantize(model, float_layers, out), rank(...), calibrate(...)
    calib: CalibrationSet  # the calibration data the step calibrated on

    @property
    def check_images(self) -> np.ndarray | Feeds:
        """The check's held-out inputs (never calibration data): images through the model's contract, or for a
        pipeline's component its calls recorded on held-out prompts, as named inputs that index and count by
        rows the same way (vopt.runtimes.base.Feeds: `inputs[idx]`, `len(inputs)`; the runtimes' run_images,
        the speed check and the sensitivity probes take both)."""
        ...

    @property
    def reference(self) -> dict[str, np.ndarray]:
        """The float model's outputs on the check images, on its own runtime."""
        ...

    def evaluate(self, path: Path) -> CheckResult | None:
        """The quantized model at `path` against the float one on the check images: metrics and gates."""
        ...

    def as_artifact(self, path: Path) -> Artifact:
        """A quantized model the scheme wrote, as an artifact of the output format (its io read back)."""
        ...

    def compare_speed(self, a: Path, b: Path, title: str) -> dict[str, Any]:
        """b's throughput over a's, timed interleaved on the target's runtime (vopt.quant.speed)."""
        ...

    def progress(self, title: str, total: int | None) -> AbstractContextManager[Callable[[int], None]]:
        """A progress bar (a terminal) or rate-limited lines (a log) for a long piece of work."""
        ...

    def warn(self, message: str) -> None: ...


@dataclass
class LoopResult:
    """What an accuracy loop chose: the quantized model, the layers it changed, the check of that model, and
    the report sections it owns (written into the quantize step's report by the stage)."""

    path: Path
    float_layers: list[str]
    check: CheckResult
    int16_layers: list[str] = field(default_factory=list)
    report: dict[str, Any] = field(default_factory=dict)  # e.g. search, fallback, sensitivity
    calibration_method: str | None = None  # when the loop chose another range method than the recipe's
