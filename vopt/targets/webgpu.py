"""webgpu: one self-contained .onnx for onnxruntime-web's WebGPU EP, verified in headless Chromium.

fp16 by default (fp32 inputs and outputs), fp32 and int8 QDQ as options. The op set is checked
against the WebGPU EP's table; ops outside it would run on wasm/CPU and are reported.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target


class WebGpuConfig(CompileBase):
    target: Literal["webgpu"] = "webgpu"
    precision: Literal["fp16", "fp32", "int8"] | None = Field(
        default=None, description="fp16 (default; fp32 I/O), fp32, or int8 QDQ (made by a quantize: section)."
    )
    static_shapes: bool = Field(
        default=False, description="Fix free input dimensions (e.g. batch) to the recipe's input shape."
    )
    keep_io_types: bool = Field(
        default=True, description="fp16: keep fp32 inputs and outputs, so the page feeds Float32Arrays."
    )
    fp16_block_ops: list[str] = Field(default_factory=list, description="fp16: op types kept in fp32.")
    max_size_mb: float = Field(
        default=2047.0, gt=0, description="Fail when the single .onnx file is bigger than this."
    )
    fail_on_fallback: bool = Field(
        default=False, description="Fail when an op is not in the WebGPU EP's table."
    )
    graph_capture: bool = Field(
        default=False,
        description="onnxruntime-web enableGraphCapture: record the GPU commands once and replay "
        "them (static shapes, every node on WebGPU); recorded in the artifact, applied by vopt's runner.",
    )
    preferred_layout: Literal["NCHW", "NHWC"] | None = Field(
        default=None, description="WebGPU EP preferredLayout (NHWC is the EP's default for convolutions)."
    )


class WebGpuTarget(Target):
    name = "webgpu"
    runtime_name = "onnxruntime-web"
    browser = True
    emulated = "the browser runs here on SwiftShader/wasm, not on a GPU: timings would not reflect the device"
    Config = WebGpuConfig
    extra = "core"
    requires = ("onnx", "onnxruntime")
    default_precision = "fp16"
    quant_scheme = "fp16"  # fp16 with fp32 I/O; int8 QDQ only when a recipe asks for it
    int8_scheme = "ort-qdq"
    description = "onnxruntime-web WebGPU EP (verified in headless Chromium)"

    def tool_versions(self) -> list[str]:
        return ["onnxruntime", "onnxsim"]  # web compile folds shapes with onnxsim

    def hardware(self) -> tuple[bool, str]:
        from vopt.runtimes.browser import missing

        reason = missing()
        if reason:
            return False, reason
        return True, "headless Chromium (WebGPU through SwiftShader when no GPU)"

    def compile(self, artifact, cfg: WebGpuConfig, ctx):
        from vopt.targets.web import WebCompile, compile_web

        job = WebCompile(
            target=self.name,
            ep="webgpu",
            ep_label="WebGPU",
            precision=self.precision(cfg),
            static_shapes=cfg.static_shapes,
            keep_io_types=cfg.keep_io_types,
            fp16_block_ops=cfg.fp16_block_ops,
            max_size_mb=cfg.max_size_mb,
            fail_on_fallback=cfg.fail_on_fallback,
            session_options=_session_options(cfg),
        )
        return compile_web(artifact, job, ctx)

    def runner(self, artifact, cfg: WebGpuConfig) -> Runner | Unavailable:
        from vopt.runtimes.browser import runner

        # Validation runs on wasm by default; `validate: {runtime: browser}` adds the WebGPU EP.
        return runner(artifact.path, ep="wasm")


def _session_options(cfg: WebGpuConfig) -> dict[str, object]:
    options: dict[str, object] = {}
    if cfg.graph_capture:
        options["enableGraphCapture"] = True
    if cfg.preferred_layout:
        options["preferredLayout"] = cfg.preferred_layout
    return options
