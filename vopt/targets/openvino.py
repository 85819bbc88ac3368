"""openvino: OpenVINO IR (.xml/.bin) from ONNX or from NNCF's int8 IR, run on an OpenVINO device (CPU
here)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.errors import BackendUnavailable, BuildError
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

IR_DIR = "openvino_model"


class OpenVinoConfig(CompileBase):
    target: Literal["openvino"] = "openvino"
    device: Literal["CPU", "GPU", "NPU", "AUTO"] = Field(
        default="CPU", description="OpenVINO device the artifact is meant for; validation runs on it."
    )
    compress_to_fp16: bool | None = Field(
        default=None, description="Store weights as fp16 in the IR; default: true when precision is fp16."
    )
    inference_precision: Literal["f32", "bf16", "f16"] | None = Field(
        default=None,
        description="INFERENCE_PRECISION_HINT for validation and benchmarks; default f32 "
        "(bf16 when precision is bf16).",
    )
    performance_hint: Literal["LATENCY", "THROUGHPUT"] | None = Field(
        default=None, description="OpenVINO PERFORMANCE_HINT."
    )
    threads: int | None = Field(default=None, ge=1, le=1024, description="INFERENCE_NUM_THREADS on CPU.")
    streams: int | None = Field(
        default=None,
        ge=1,
        le=256,
        description="NUM_STREAMS: parallel inference streams (the performance hint's choice when omitted).",
    )
    model_cache: bool = Field(
        default=False,
        description="CACHE_DIR under vopt's cache: OpenVINO stores the "
        "compiled model there, so the next load (first inference) skips compilation.",
    )


class OpenVinoTarget(Target):
    runner_settings = (
        "device",
        "precision",
        "inference_precision",
        "performance_hint",
        "threads",
        "streams",
        "model_cache",
    )
    name = "openvino"
    runtime_name = "openvino"
    Config = OpenVinoConfig
    extra = "openvino"
    requires = ("openvino",)
    default_opset = 17
    default_precision = "fp32"
    quant_scheme = "nncf"  # the quantize stage makes an int8 OpenVINO IR with NNCF
    input_formats = ("onnx", "openvino-ir")
    # an int8 QDQ file (the ort-qdq scheme) runs on the CPU plugin's u8 x s8 kernels: 7-bit GEMM weights
    # without VNNI; the nncf scheme decides the same through its overflow_fix
    x86_int8_saturates = True
    # vopt's ORT QDQ file with its bias correction, compiled by OpenVINO: on an AMD EPYC without VNNI it held
    # centered cosine 0.994-0.995 on EfficientNet-Lite0/1/2 where nncf.quantize held 0.987-0.988, at the same
    # speed (docs/benchmarks.md, "ORT QDQ with bias correction on OpenVINO")
    tune_schemes = ("ort-qdq",)
    description = "OpenVINO IR on the OpenVINO runtime (CPU/GPU/NPU)"

    def tool_versions(self) -> list[str]:
        return ["openvino", "nncf"]

    def hardware(self) -> tuple[bool, str]:
        if importlib.util.find_spec("openvino") is None:
            return False, "openvino not installed"
        import openvino as ov

        core = ov.Core()
        names = []
        for dev in core.available_devices:
            try:
                names.append(f"{dev} ({core.get_property(dev, 'FULL_DEVICE_NAME')})")
            except Exception:  # a device may not report its name
                names.append(dev)
        return bool(names), "devices: " + ", ".join(names) if names else "no OpenVINO device found"

    def compile(self, artifact: Artifact, cfg: OpenVinoConfig, ctx) -> Artifact:
        if importlib.util.find_spec("openvino") is None:
            raise BackendUnavailable(
                "the openvino target needs the 'openvino' package: pip install 'vopt[openvino]'"
            )
        import openvino as ov

        from vopt.runtimes.openvino import model_file, record_settings
        from vopt.targets.metadata import artifact_metadata, effective_precision

        self.check_format(artifact)
        setting = self.precision(cfg)
        if artifact.format == "openvino-ir":
            model = ov.Core().read_model(str(model_file(artifact.path)))
            source = "openvino-ir"
        elif artifact.format == "onnx":
            try:
                model = ov.convert_model(artifact.path)
            except Exception as exc:
                raise _rejected(artifact.path, exc, ctx) from exc
            source = "onnx"
        ops = [op.get_type_name() for op in model.get_ordered_ops()]
        fq = sum(1 for o in ops if o == "FakeQuantize")
        # FakeQuantize ops make it int8 whatever the setting; int8 asked for without them is an fp32 IR.
        built = "int8" if fq else ("fp32" if setting == "int8" else None)
        precision = effective_precision(artifact, setting, built=built)
        for key, value in artifact_metadata(artifact, ctx.build_name, self.name, precision).items():
            model.set_rt_info(value, ["vopt", key.removeprefix("vopt.")])
        runtime = deployment_settings(cfg, setting)
        record_settings(model, runtime)
        compress = cfg.compress_to_fp16 if cfg.compress_to_fp16 is not None else setting == "fp16"
        out_dir = ctx.out(IR_DIR)
        out_dir.mkdir(parents=True, exist_ok=True)
        ov.save_model(model, str(out_dir / "model.xml"), compress_to_fp16=compress)
        if setting == "int8" and not fq:
            ctx.warn(
                "precision int8 but the IR has no FakeQuantize ops: add a `quantize:` section (NNCF) for int8"
            )
        ctx.report.update(
            source=source,
            ops=len(ops),
            fake_quantize=fq,
            compress_to_fp16=compress,
            device=cfg.device,
            summary=f"IR from {source}, {len(ops)} ops"
            + (f", {fq} FakeQuantize" if fq else "")
            + (", fp16 weights" if compress else ""),
        )
        return artifact.derive(
            out_dir,
            format="openvino-ir",
            io=_io_spec(model, artifact),
            meta={"precision": precision, "runtime": {"name": self.runtime_name, "settings": runtime}},
        )

    def runner(self, artifact: Artifact, cfg: OpenVinoConfig) -> Runner | Unavailable:
        if importlib.util.find_spec("openvino") is None:
            return Unavailable("openvino is not installed: pip install 'vopt[openvino]'")
        import openvino as ov

        if cfg.device != "AUTO" and cfg.device not in ov.Core().available_devices:
            have = ", ".join(ov.Core().available_devices)
            return Unavailable(f"OpenVINO device {cfg.device} is not present here (have: {have})")
        from vopt.runtimes.openvino import runner

        return runner(
            artifact.path,
            device=cfg.device,
            precision=self.precision(cfg),
            hint=cfg.inference_precision,
            threads=cfg.threads,
            performance_hint=cfg.performance_hint,
            streams=cfg.streams,
            cache_dir=_model_cache_dir() if cfg.model_cache else None,
        )


def _model_cache_dir() -> str:
    from vopt.core.cache import default_cache_dir

    path = default_cache_dir() / "openvino-model-cache"
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def deployment_settings(cfg: OpenVinoConfig, precision: str) -> dict[str, str]:
    """The properties a deployment should compile the IR with (recorded in its rt_info `runtime_options`): the
    recipe's hints; INFERENCE_PRECISION_HINT only when asked for (else the plugin's own choice, bf16 on
    AMX)."""
    hint = cfg.inference_precision or ("bf16" if precision == "bf16" else None)
    settings = {"PERFORMANCE_HINT": cfg.performance_hint or "LATENCY"}
    if hint:
        settings["INFERENCE_PRECISION_HINT"] = hint
    if cfg.threads:
        settings["INFERENCE_NUM_THREADS"] = str(cfg.threads)
    if cfg.streams:
        settings["NUM_STREAMS"] = str(cfg.streams)
    return settings


def _io_spec(model, artifact: Artifact) -> dict:
    """I/O as the IR has it: NNCF's IR is reshaped to static shapes, and validation must batch to match."""
    io = artifact.io.model_copy(deep=True)

    def dims(port) -> list[int | str]:
        return [
            d.get_length() if d.is_static else "batch" if i == 0 else f"d{i}"
            for i, d in enumerate(port.get_partial_shape())
        ]

    for specs, ports in ((io.inputs, model.inputs), (io.outputs, model.outputs)):
        by_name = {n: p for p in ports for n in p.get_names()}
        for spec in specs:
            if spec.name in by_name:
                spec.shape = dims(by_name[spec.name])
    return io.model_dump()


def _rejected(path: str | Path, exc: Exception, ctx) -> BuildError:
    """ov.convert_model refused the ONNX file: name the nodes (its message lists the op types it has no rule
    for; otherwise bisect through convert_model), and say what to do (vopt/runtimes/diagnose.py)."""
    import openvino as ov

    from vopt.runtimes.diagnose import rejected_graph_error

    return rejected_graph_error(
        "OpenVINO",
        Path(path),
        exc,
        lambda sub: ov.convert_model(str(sub)),
        workdir=ctx.workdir,
        named_hint=(
            "OpenVINO has no conversion for these ops: build this model for the `cpu` target (ONNX Runtime "
            "runs them), or change the model so that it exports without them"
        ),
    )
