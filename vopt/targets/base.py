"""What every compile target provides. Target modules keep heavy imports inside methods."""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field

from vopt.recipe.sections.base import Section

if TYPE_CHECKING:
    from pathlib import Path

    from vopt.core.artifact import Artifact
    from vopt.core.context import Context
    from vopt.runtimes.base import Runner, Unavailable


class CompileBase(Section):
    """Fields every `compile:` section shares. Targets subclass it with `target: Literal[...]`."""

    target: str
    precision: Literal["fp32", "fp16", "bf16", "int8", "int16", "int4"] | None = Field(
        default=None, description="Artifact precision; the target's default when omitted."
    )


class Target:
    """A compile target. The engine asks a target, never its name, what it needs to know: set these in the
    target's module."""

    name: ClassVar[str]
    Config: ClassVar[type[CompileBase]]
    extra: ClassVar[str] = "core"
    # Shell commands, run in a vopt checkout, that install the target's backend where `pip install
    # 'vopt[<extra>]'` into the main environment cannot (its pins conflict with constraints.txt), and the
    # folder holding the `vopt` they install. install_hint() says them; `vopt matrix` runs them.
    install_commands: ClassVar[tuple[str, ...]] = ()
    install_bin: ClassVar[str | None] = None
    requires: ClassVar[tuple[str, ...]] = ()  # import names
    default_opset: ClassVar[int] = 17
    default_precision: ClassVar[str] = "fp32"
    quantize_after_compile: ClassVar[bool] = False
    # Artifact formats compile() takes (vopt.core.artifact.FORMATS); the plan checks a scheme's output.
    input_formats: ClassVar[tuple[str, ...]] = ("onnx",)
    # The quantize stage's default scheme for this target (a registered scheme name), or None.
    quant_scheme: ClassVar[str | None] = None
    int8_scheme: ClassVar[str | None] = None  # the scheme for int8/int16 when quant_scheme cannot make them
    # Other schemes whose output this target compiles: `vopt tune` builds each (with its defaults) as a
    # candidate when the recipe names no scheme and sets no scheme options.
    tune_schemes: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # The runtime that runs the artifact (names as in vopt/runtimes/formats.py: "onnxruntime", "openvino",
    # "onnxruntime-qnn", "onnxruntime-web", ...). Every target sets it.
    runtime_name: ClassVar[str]
    # Why timings on this machine would not reflect the device (the runtime here only emulates it, e.g. a
    # simulator or a browser on wasm); None when the runtime here is the real one.
    emulated: ClassVar[str | None] = None
    # The int8 artifact runs on x86 CPU kernels that add pairs of u8 x s8 products in 16 bits on CPUs without
    # VNNI (ONNX Runtime's and OpenVINO's CPU plugin both), which saturates: the ort-qdq scheme then gives the
    # GEMM layers 7-bit weights (its `reduce_range` option) unless it can give them uint8 weights.
    x86_int8_saturates: ClassVar[bool] = False
    # The int8 artifact runs on ONNX Runtime's x86 CPU kernels, which have U8U8 kernels for uint8 weights
    # (8 bits, no saturation); OpenVINO's CPU plugin runs such layers in f32.
    ort_cpu_int8: ClassVar[bool] = False
    # Export without dynamic axes: the device compiles fixed shapes.
    static_shapes: ClassVar[bool] = False
    # The artifact runs in a browser (onnxruntime-web): it is verified in headless Chromium, and that
    # browser's build is part of the validate step's cache key.
    browser: ClassVar[bool] = False
    # What a check of the artifact in the browser here cannot show (printed by `vopt verify`), or None.
    browser_note: ClassVar[str | None] = None
    # `vopt inspect --check <target>` runs check_onnx() on an ONNX file before any build.
    has_onnx_check: ClassVar[bool] = False
    # The CI runner labels a build of this target needs (`vopt matrix`): GitHub `runs-on`, GitLab `tags`. GPU
    # and Apple targets need runners with that hardware; the rest build and validate on a plain Linux x86
    # runner.
    ci_runners: ClassVar[dict[str, tuple[str, ...]]] = {
        "github": ("ubuntu-latest",),
        "gitlab": ("saas-linux-medium-amd64",),
    }
    # How a detector's NMS (`export.nms`) reaches the device: "graph" (ONNX NonMaxSuppression in the exported
    # graph, which the target's runtime runs), "compile" (the compile step adds the NMS its format deploys,
    # e.g. Core ML's NonMaximumSuppression model), or None: `nms_refusal` says why (exit 2 at plan time).
    nms: ClassVar[str | None] = "graph"
    nms_refusal: ClassVar[str | None] = None
    # Integer graph outputs (a detector's labels and num_detections) as int32: the device binds no int64.
    int32_outputs: ClassVar[bool] = False
    # ONNX on this machine's CPU: the benchmark also times the artifact on OpenVINO and advises when faster.
    compares_cpu_runtimes: ClassVar[bool] = False
    # The compile fields the target's runner reads (its runtime's session settings). The quantize step's
    # speed check runs the float and the quantized model with them, so they and only they enter its cache
    # key: any other compile field (ort_format, embed_context, an engine's workspace) changes only what the
    # compile step writes. None: every field (the safe default for a target that does not say).
    runner_settings: ClassVar[tuple[str, ...] | None] = None

    def available(self) -> tuple[bool, str]:
        """Can this machine build artifacts for the target?"""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            return False, f"missing {', '.join(missing)}: {self.install_hint()}"
        return True, "ok"

    @classmethod
    def install_hint(cls) -> str:
        """How to install what the target needs, as exit-4 errors and `vopt doctor` say it."""
        if cls.install_commands:
            return f"vopt[{cls.extra}] goes in its own venv: " + " && ".join(cls.install_commands)
        return f"pip install 'vopt[{cls.extra}]'"

    def hardware(self) -> tuple[bool, str]:
        """Is the device the artifact is meant for present (or simulated) here?"""
        return True, "runs on this CPU"

    def tool_versions(self) -> list[str]:
        """Distributions whose versions enter the compile step's cache key."""
        return []

    def key_material(self) -> dict[str, str]:
        """Facts about this machine that change the compiled bytes (e.g. the GPU architecture): they enter
        the compile cache key. Must stay cheap and import nothing heavy: every plan computes it."""
        return {}

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time checks that need more of the recipe than the compile section (raise RecipeError)."""

    def check_onnx(self, path: str) -> dict[str, Any]:
        """The target's pre-build check of an ONNX file (when has_onnx_check): its findings, no build."""
        raise NotImplementedError(f"the {self.name} target has no pre-build check")

    def check_format(self, artifact: Artifact) -> None:
        """A clear compile error for an input format this target cannot take."""
        if artifact.format not in self.input_formats:
            from vopt.errors import BuildError

            raise BuildError(
                f"the {self.name} target compiles {' or '.join(self.input_formats)}, "
                f"not {artifact.format} ({artifact.file.name})",
                stage="compile",
            )

    def settings_for_quantize(self, cfg: CompileBase) -> dict[str, Any]:
        """The compile settings the quantize step reads (its cache key holds these, not the whole section)."""
        data = cfg.model_dump(mode="json")
        if self.runner_settings is None:
            return data
        return {k: v for k, v in data.items() if k == "target" or k in self.runner_settings}

    def precision(self, cfg: CompileBase) -> str:
        return cfg.precision or self.default_precision

    def compile(self, artifact: Artifact, cfg: CompileBase, ctx: Context) -> Artifact:
        raise NotImplementedError

    def runner(self, artifact: Artifact, cfg: CompileBase) -> Runner | Unavailable:
        from vopt.runtimes.base import Unavailable

        return Unavailable(f"no runtime for {self.name} artifacts on this machine")

    def check_runner(self, path: Path, settings: dict[str, Any]) -> Runner | Unavailable | None:
        """What the quantize check runs a quantized model on (`settings`: the quantize step's compile
        settings, `settings_for_quantize`), when the model's own format runtime at full precision would not
        compute what the device does: the device's runtime or its simulator (QNN's HTP), so the check that
        steers the fallback and the search measures the artifact where it will run. None (the default): the
        format's runtime (ONNX Runtime's CPU EP for QDQ ONNX, OpenVINO for an IR) stands for the device.
        Unavailable: the device's runtime is missing here; the check then runs on the format's runtime and
        says loudly that it did not run on the device."""
        return None
