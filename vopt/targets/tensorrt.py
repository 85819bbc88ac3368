"""tensorrt: a serialized TensorRT engine built with the `tensorrt` Python API (fp16/int8/bf16 flags, explicit
Q/DQ, optimization profiles from the recipe's dynamic dims, a persistent timing cache, a workspace limit).
The ONNX readiness check runs first and needs no GPU; the builder needs TensorRT and an NVIDIA GPU."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.errors import BackendUnavailable, BuildError, first_line
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

TrtPrecision = Literal["fp32", "fp16", "bf16", "int8"]

NO_TENSORRT = (
    "the 'tensorrt' package is not installed: pip install 'vopt[tensorrt]' takes PyPI's tensorrt 11.4 "
    "metapackage, whose tensorrt-cu12-libs (or -cu13-libs) sdist downloads TensorRT's libraries from NVIDIA "
    "while it installs, so the machine must reach NVIDIA's servers; engines build only on an NVIDIA GPU with "
    "its driver"
)


class TensorRtConfig(CompileBase):
    target: Literal["tensorrt"] = "tensorrt"
    precision: TrtPrecision | list[TrtPrecision] | None = Field(  # type: ignore[assignment]
        default=None,
        description="Builder precision flags, e.g. [fp16, int8]; int8 uses the Q/DQ from the quantize stage.",
    )
    workspace_gb: float = Field(
        default=4.0, gt=0, le=1024, description="Builder workspace memory limit in GiB."
    )
    timing_cache: str | None = Field(
        default=None,
        description="Persistent timing cache file; default: <vopt cache>/tensorrt/timing-<trt>-<sm>.cache.",
    )
    profiles: dict[str, list[list[int]]] | None = Field(
        default=None,
        description="Explicit optimization profiles {input: [min, opt, max] shapes}; "
        "default: derived from model.input.dynamic.",
    )
    strict: bool = Field(default=True, description="Fail the build when the readiness check finds errors.")
    builder_optimization_level: int | None = Field(
        default=None,
        ge=0,
        le=5,
        description="TensorRT builder optimization level 0-5 (3 is TensorRT's "
        "default; 5 searches longest for the fastest tactics).",
    )
    sparsity: bool = Field(
        default=False,
        description="Let TensorRT use 2:4 structured-sparse kernels "
        "(BuilderFlag.SPARSE_WEIGHTS) where weights allow.",
    )
    version_compatible: bool = Field(
        default=False,
        description="Build a version-compatible engine (BuilderFlag.VERSION_COMPATIBLE) that "
        "later TensorRT releases of the same major version can still load.",
    )


# TensorRT versions vopt's engine path supports: explicit Q/DQ only (TensorRT 10 deprecated and 11 removes
# implicit INT8 with calibrators), so int8 always comes from the quantize stage's Q/DQ model.
SUPPORTED_MAJOR = (10, 11)


def builder_settings(cfg: TensorRtConfig) -> dict[str, object]:
    """What the builder config gets beyond the precision flags and profiles (a plain dict: testable, and
    recorded in the compile report without a GPU)."""
    settings: dict[str, object] = {"extra_flags": []}
    if cfg.builder_optimization_level is not None:
        settings["builder_optimization_level"] = cfg.builder_optimization_level
    if cfg.sparsity:
        settings["extra_flags"].append("SPARSE_WEIGHTS")  # type: ignore[union-attr]
    if cfg.version_compatible:
        settings["extra_flags"].append("VERSION_COMPATIBLE")  # type: ignore[union-attr]
    return settings


class TensorRtTarget(Target):
    name = "tensorrt"
    runtime_name = "tensorrt"
    Config = TensorRtConfig
    extra = "tensorrt"
    requires = ("tensorrt",)
    default_opset = 17
    default_precision = "fp16"
    quant_scheme = "trt-qdq"  # symmetric s8 Q/DQ
    description = "TensorRT engine (NVIDIA GPU)"
    ci_runners = {"github": ("self-hosted", "linux", "x64", "gpu", "nvidia"), "gitlab": ("gpu", "nvidia")}
    has_onnx_check = True
    # TensorRT binds no int64: a detector's labels and num_detections leave the graph as int32. Its ONNX
    # parser builds NonMaxSuppression natively (INMSLayer), so export.nms stays in the graph.
    int32_outputs = True

    def tool_versions(self) -> list[str]:
        return ["tensorrt"]

    def key_material(self) -> dict[str, str]:
        """An engine only runs on the GPU architecture it was built for: a shared cache must not hand an sm80
        engine to an sm90 machine. nvidia-smi only (no CUDA import); 'none' without an NVIDIA GPU."""
        from vopt.runtimes.tensorrt import gpu_compute_capability

        return {"compute_capability": gpu_compute_capability() or "none"}

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("tensorrt") is None:
            return False, NO_TENSORRT
        return self.hardware()

    def hardware(self) -> tuple[bool, str]:
        from vopt.runtimes.tensorrt import gpu_compute_capability

        cc = gpu_compute_capability()
        if cc is None:
            return False, (
                "no NVIDIA GPU (nvidia-smi not found or reports none): engines cannot be built or run here"
            )
        return True, f"NVIDIA GPU, compute capability {cc}"

    def precision(self, cfg: TensorRtConfig) -> str:
        return "+".join(self.flags(cfg))

    def flags(self, cfg: TensorRtConfig) -> list[str]:
        p = cfg.precision or self.default_precision
        return [p] if isinstance(p, str) else list(p)

    def profiles(
        self, cfg: TensorRtConfig, model_input: Any, artifact: Artifact | None = None, example: Any = None
    ) -> dict[str, list[list[int]]]:
        """`compile.profiles`, else from the recipe's model input (vopt.recipe.sections.model.InputSpec)."""
        from vopt.runtimes.tensorrt import profiles_from_dynamic

        if cfg.profiles:
            return cfg.profiles
        inp = model_input
        names = [i.name for i in artifact.io.inputs] if artifact is not None else [inp.name]
        if inp.name not in names:  # a model of several named inputs (a UNet): a profile per dynamic input
            return _named_profiles(artifact, inp, example or artifact)
        # Without `model.input.dynamic`, a dynamic-batch export gets a one-shape profile: the example shape.
        return profiles_from_dynamic(inp.name, inp.shape, inp.dynamic) or {inp.name: [list(inp.shape)] * 3}

    def check_onnx(self, path: str) -> dict[str, Any]:
        from vopt.runtimes.tensorrt import readiness

        return readiness(path)

    def check(self, artifact: Artifact, cfg: TensorRtConfig, model_input: Any, example: Any = None) -> dict:
        """The readiness check alone (no GPU): what `compile` runs before it calls the builder."""
        from vopt.runtimes.tensorrt import readiness

        self.check_format(artifact)
        profiles = self.profiles(cfg, model_input, artifact, example)
        report = readiness(artifact.path, profiles)
        report["profiles"] = profiles
        flags = self.flags(cfg)
        has_qdq = "QuantizeLinear" in report["op_types"]
        if "int8" in flags and not has_qdq:
            report["findings"].append(
                {
                    "level": "warning",
                    "check": "qdq",
                    "nodes": None,
                    "message": "int8 flag without Q/DQ nodes: TensorRT 10 has no implicit "
                    "calibration here; add a `quantize:` section (trt-qdq scheme)",
                }
            )
            report["warnings"] += 1
        if has_qdq and "int8" not in flags:
            flags.append("int8")
            report["flags_added"] = ["int8"]
        report["flags"] = flags
        report["builder"] = builder_settings(cfg)
        report["supported_tensorrt"] = [f"{m}.x" for m in SUPPORTED_MAJOR]
        return report

    def compile(self, artifact: Artifact, cfg: TensorRtConfig, ctx) -> Artifact:
        from vopt.runtimes.tensorrt import build_engine, engine_name, gpu_compute_capability

        # a component's example shapes: what its load step made (concrete sizes, not the export's axes)
        load = ctx.artifacts.get("load")
        example = load.components.get(ctx.component) if load is not None and ctx.component else None
        report = self.check(artifact, cfg, ctx.model_input, example)
        ctx.report["readiness"] = report
        errors = [f for f in report["findings"] if f["level"] == "error"]
        for f in report["findings"]:
            if f["level"] == "warning":
                ctx.warn(f"tensorrt readiness: {f['message']}")
        if errors and cfg.strict:
            raise BuildError(
                f"the ONNX is not ready for TensorRT ({len(errors)} problem(s))",
                stage="compile",
                lines=[f"{f['check']}: {f['message']}" for f in errors],
            )
        if importlib.util.find_spec("tensorrt") is None:
            raise BackendUnavailable(f"readiness check passed; engine build skipped: {NO_TENSORRT}")
        cc = gpu_compute_capability()
        if cc is None:
            raise BackendUnavailable("readiness check passed; engine build skipped: no NVIDIA GPU here")
        import tensorrt as trt

        from vopt.core.cache import default_cache_dir

        default_cache = default_cache_dir() / "tensorrt" / f"timing-{trt.__version__}-{cc}.cache"
        cache = Path(cfg.timing_cache) if cfg.timing_cache else default_cache
        out_dir = ctx.out("tensorrt_engine")  # the engine plus its metadata file
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / engine_name(trt.__version__, cc)
        try:
            built = build_engine(
                artifact.path,
                path,
                flags=report["flags"],
                workspace_gb=cfg.workspace_gb,
                profiles=report["profiles"],
                timing_cache=cache,
                builder=report["builder"],
            )
        except Exception as exc:
            raise BuildError(f"TensorRT engine build failed: {first_line(exc)}", stage="compile") from exc
        meta = self.metadata(artifact, report["flags"], ctx.build_name)
        (out_dir / "vopt_metadata.json").write_text(json.dumps(meta, indent=1))
        flags = "+".join(report["flags"])
        ctx.report.update(
            built, compute_capability=cc, summary=f"TensorRT {trt.__version__} engine for {cc}, flags {flags}"
        )
        return artifact.derive(out_dir, format="tensorrt-engine", meta={"precision": meta["vopt.precision"]})

    def metadata(self, artifact: Artifact, flags: list[str], recipe_name: str) -> dict[str, str]:
        """Engines have no metadata slot: this goes into vopt_metadata.json beside the engine. The precision
        is the builder flags really used, with the int8 that check() adds for a Q/DQ model."""
        from vopt.targets.metadata import artifact_metadata, effective_precision

        precision = effective_precision(artifact, "+".join(flags))
        return artifact_metadata(artifact, recipe_name, self.name, precision)

    def runner(self, artifact: Artifact, cfg: TensorRtConfig) -> Runner | Unavailable:
        ok, why = self.available()
        if not ok:
            return Unavailable(why)
        from vopt.runtimes.tensorrt import runner

        path = Path(artifact.path)
        return runner(next(path.glob("*.engine")) if path.is_dir() else path)


def _named_profiles(artifact: Artifact, model_input: Any, loaded: Artifact) -> dict[str, list[list[int]]]:
    """[min, opt, max] shapes of each input with a dynamic dim: the batch from `model.input.dynamic` (else 1,
    the example batch, 4x it), any other dynamic dim (a VAE decoder's height and width) from half to twice its
    size in the example the model was loaded with."""
    example = {i.name: i.shape for i in loaded.io.inputs}
    batch = (model_input.dynamic or {}).get("batch")
    out: dict[str, list[list[int]]] = {}
    for spec in artifact.io.inputs:
        if all(isinstance(d, int) for d in spec.shape):
            continue
        lo, opt, hi = [], [], []
        for axis, dim in enumerate(spec.shape):
            if isinstance(dim, int):
                lo.append(dim), opt.append(dim), hi.append(dim)
                continue
            size = example.get(spec.name, [])[axis] if axis < len(example.get(spec.name, [])) else None
            size = size if isinstance(size, int) else 2 * int(model_input.shape[0])
            if axis == 0:
                b = batch or [1, size, 4 * size]
                lo.append(b[0]), opt.append(b[1]), hi.append(b[2])
            else:
                lo.append(max(1, size // 2)), opt.append(size), hi.append(2 * size)
        out[spec.name] = [lo, opt, hi]
    return out
