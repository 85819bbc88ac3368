"""cpu: an ONNX Runtime-optimized ONNX (optionally also .ort), run on ORT's CPU EP."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target


class CpuConfig(CompileBase):
    target: Literal["cpu"] = "cpu"
    optimization: Literal["basic", "extended", "all"] = Field(
        default="extended", description="ORT graph optimization level baked into the artifact."
    )
    session_optimization: Literal["basic", "extended", "all"] = Field(
        default="all",
        description="ORT graph optimization level a session runs the artifact at (recorded in its "
        "metadata; `all` adds the layout transforms, e.g. NHWC QLinearConv, that cannot be saved into the "
        "file).",
    )
    ort_format: bool = Field(default=False, description="Also write the .ort flatbuffer format.")
    threads: int | None = Field(
        default=None, ge=1, le=1024, description="intra-op threads for validation and benchmarks."
    )


class CpuTarget(Target):
    runner_settings = ("threads", "session_optimization")
    name = "cpu"
    runtime_name = "onnxruntime"
    ort_cpu_int8 = True
    x86_int8_saturates = True
    Config = CpuConfig
    requires = ("onnxruntime",)
    default_opset = 17
    default_precision = "fp32"
    # The benchmark also times this ONNX file on OpenVINO's CPU plugin and says when it is much faster.
    compares_cpu_runtimes = True
    quant_scheme = "ort-qdq"  # u8 activations / s8 per-channel weights: the fast int8 path on x86
    description = "ONNX Runtime on CPU"

    def hardware(self) -> tuple[bool, str]:
        import os

        from vopt.machine import cpu_model

        return True, f"{cpu_model()}, {os.cpu_count()} cores"

    def tool_versions(self) -> list[str]:
        return ["onnxruntime"]

    def compile(self, artifact: Artifact, cfg: CpuConfig, ctx) -> Artifact:
        import json
        from pathlib import Path

        import onnx
        import onnxruntime as ort

        from vopt.formats.onnx import external_data_files, save_onnx
        from vopt.runtimes.ort import LEVELS, METADATA_KEY
        from vopt.targets.metadata import (
            artifact_metadata,
            effective_precision,
            qdq_precision,
            set_onnx_metadata,
        )

        self.check_format(artifact)
        levels = {
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }
        path = ctx.out("model.onnx")
        so = ort.SessionOptions()
        so.graph_optimization_level = levels[cfg.optimization]
        so.optimized_model_filepath = str(path)
        so.log_severity_level = 3
        if external_data_files(Path(artifact.path)):
            # A model with external data (any over 2 GB): ORT would point the optimized model at the input's
            # data file, which is not beside it; write the initializers to a data file of its own instead.
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_file_name", f"{path.name}.data"
            )
            so.add_session_config_entry(
                "session.optimized_model_external_initializers_min_size_in_bytes", "1024"
            )
        model_src: str | bytes = artifact.path
        built, fp16 = None, None
        if self.precision(cfg) == "fp16":  # fp32 I/O; nodes whose recorded ranges would overflow stay fp32
            source = onnx.load(artifact.path)
            built = qdq_precision(source)
            if not built:
                from vopt.quant.fp16 import convert_with_ranges

                converted, fp16 = convert_with_ranges(source, ctx, artifact.path)
                ctx.report["fp16"] = fp16
                model_src, built = converted.SerializeToString(), "fp16"
        ort.InferenceSession(model_src, so, providers=["CPUExecutionProvider"])
        proto = onnx.load(str(path), load_external_data=False)  # the graph; external data stays where it is
        precision = effective_precision(artifact, self.precision(cfg), built=built or qdq_precision(proto))
        runtime = {"graph_optimization_level": LEVELS[cfg.session_optimization]}  # ORT's own enum name
        set_onnx_metadata(
            proto,
            {
                **artifact_metadata(artifact, ctx.build_name, self.name, precision),
                METADATA_KEY: json.dumps(runtime),
            },
        )
        save_onnx(proto, path)
        if cfg.ort_format:
            so2 = ort.SessionOptions()
            so2.optimized_model_filepath = str(ctx.out("model.ort"))
            so2.add_session_config_entry("session.save_model_format", "ORT")
            ort.InferenceSession(str(path), so2, providers=["CPUExecutionProvider"])
        quantized_ops = ("QuantizeLinear", "DequantizeLinear", "QLinearConv", "QLinearMatMul")
        qdq = sum(1 for n in proto.graph.node if n.op_type in quantized_ops)
        ctx.report["summary"] = f"ORT {cfg.optimization} optimizations, {len(proto.graph.node)} nodes" + (
            f" ({qdq} quantized)" if qdq else ""
        )
        if fp16 is not None:
            ctx.report["summary"] += f", fp16 ({len(fp16['kept_fp32_nodes'])} nodes kept fp32)"
        ctx.report["nodes"] = len(proto.graph.node)
        # The .ort file travels with the ONNX into the build directory.
        companions = ["model.ort"] if cfg.ort_format else []
        return artifact.derive(
            path,
            format="onnx",
            meta={
                "companions": companions,
                "precision": precision,
                "runtime": {"name": self.runtime_name, "settings": runtime},
            },
        )

    def runner(self, artifact: Artifact, cfg: CpuConfig) -> Runner | Unavailable:
        from vopt.runtimes.ort import runner

        return runner(artifact.path, threads=cfg.threads)
