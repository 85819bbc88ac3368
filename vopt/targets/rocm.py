"""rocm: an fp16 ONNX with fp32 inputs/outputs for ONNX Runtime's MIGraphX / ROCm EPs.
Without an AMD GPU it is checked on ORT's CPU EP (which runs fp16 graphs through inserted casts)."""

from __future__ import annotations

import importlib.util
import os
from typing import Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.errors import BuildError, first_line
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

GPU_PROVIDERS = ("MIGraphXExecutionProvider", "ROCMExecutionProvider")


class RocmConfig(CompileBase):
    target: Literal["rocm"] = "rocm"
    precision: Literal["fp16", "fp32"] | None = Field(  # type: ignore[assignment]
        default=None,
        description="fp16 (default; fp32 I/O) or fp32. int8: a `quantize:` section (QDQ is kept as it is).",
    )
    keep_io_types: bool = Field(default=True, description="Keep fp32 inputs/outputs around the fp16 graph.")
    op_block_list: list[str] = Field(
        default_factory=list, description="Op types kept in fp32 (e.g. numerically touchy ones)."
    )
    node_block_list: list[str] = Field(default_factory=list, description="Node names kept in fp32.")
    provider: Literal["migraphx", "rocm"] = Field(
        default="migraphx", description="The EP the artifact is meant for."
    )


class RocmTarget(Target):
    name = "rocm"
    runtime_name = "onnxruntime-rocm"  # MIGraphX/ROCm EP (ORT CPU without an AMD GPU)
    Config = RocmConfig
    requires = ("onnxruntime", "onnx")
    default_opset = 17
    default_precision = "fp16"
    quant_scheme = "fp16"
    int8_scheme = "ort-qdq"
    description = "fp16 ONNX for ONNX Runtime MIGraphX/ROCm (checked on ORT CPU without an AMD GPU)"
    ci_runners = {"github": ("self-hosted", "linux", "x64", "gpu", "amd"), "gitlab": ("gpu", "amd")}

    def tool_versions(self) -> list[str]:
        return ["onnxruntime"]

    def hardware(self) -> tuple[bool, str]:
        gpu = os.path.exists("/dev/kfd")
        eps = [p for p in _providers() if p in GPU_PROVIDERS]
        if gpu and eps:
            return True, f"AMD GPU present, ORT providers: {', '.join(eps)}"
        missing = []
        if not gpu:
            missing.append("no AMD GPU (/dev/kfd absent)")
        if not eps:
            missing.append("this onnxruntime build has no MIGraphX/ROCm EP")
        return False, "; ".join(missing) + "; artifacts are checked on ORT CPU"

    def compile(self, artifact: Artifact, cfg: RocmConfig, ctx) -> Artifact:
        import onnx

        from vopt.targets.metadata import (
            artifact_metadata,
            effective_precision,
            qdq_precision,
            set_onnx_metadata,
        )

        self.check_format(artifact)
        setting = self.precision(cfg)
        if setting not in ("fp16", "fp32"):
            raise BuildError(f"rocm builds fp16 or fp32 artifacts, not {setting}", stage="compile")
        proto = onnx.load(artifact.path)
        already = _float16_tensors(proto)
        qdq = qdq_precision(proto)
        if qdq and setting == "fp16":
            # fp16 conversion would turn the Q/DQ scales into fp16, which DequantizeLinear rejects.
            ctx.warn(
                f"the input is already {qdq} QDQ (from the quantize stage): kept as it is, not "
                "converted to fp16"
            )
        if setting == "fp16" and not already and not qdq:
            from vopt.quant.fp16 import convert_to_fp16

            try:
                proto, _ = convert_to_fp16(
                    proto,
                    keep_io_types=cfg.keep_io_types,
                    op_block=cfg.op_block_list,
                    node_block=cfg.node_block_list,
                )
            except Exception as exc:
                raise BuildError(f"fp16 conversion failed: {first_line(exc)}", stage="compile") from exc
        precision = effective_precision(artifact, setting, built=qdq)
        set_onnx_metadata(proto, artifact_metadata(artifact, ctx.build_name, self.name, precision))
        path = ctx.out("model.onnx")
        onnx.save(proto, str(path))
        fp16 = _float16_tensors(proto)
        io_types = sorted(
            {
                onnx.helper.tensor_dtype_to_np_dtype(v.type.tensor_type.elem_type).name
                for v in [*proto.graph.input, *proto.graph.output]
            }
        )
        ctx.report.update(
            fp16_initializers=fp16,
            io_types=io_types,
            provider=cfg.provider,
            summary=f"{precision}, {fp16} fp16 initializers, I/O {'/'.join(io_types)}, for {cfg.provider}",
        )
        return artifact.derive(path, format="onnx", meta={"precision": precision})

    def runner(self, artifact: Artifact, cfg: RocmConfig) -> Runner | Unavailable:
        from vopt.runtimes.ort import runner

        gpu_ok, _ = self.hardware()
        if gpu_ok:
            from vopt.runtimes.ort import session

            provider = "MIGraphXExecutionProvider" if cfg.provider == "migraphx" else "ROCMExecutionProvider"
            sess = session(artifact.path, providers=[provider, "CPUExecutionProvider"])
            names = [o.name for o in sess.get_outputs()]
            return Runner(
                run=lambda feeds: dict(zip(names, sess.run(names, feeds), strict=True)),
                runtime=f"onnxruntime-{cfg.provider}",
                info={"providers": sess.get_providers()},
            )
        run = runner(artifact.path, label="onnxruntime-cpu")
        run.info["note"] = "no AMD GPU here: the fp16 artifact ran on ORT's CPU EP"
        return run


def _providers() -> list[str]:
    if importlib.util.find_spec("onnxruntime") is None:
        return []
    import onnxruntime as ort

    return ort.get_available_providers()


def _float16_tensors(proto) -> int:
    import onnx

    return sum(1 for i in proto.graph.initializer if i.data_type == onnx.TensorProto.FLOAT16)
