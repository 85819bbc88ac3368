"""webnn: a static-shape .onnx for onnxruntime-web's WebNN EP.

WebNN needs static shapes: the export runs without dynamic axes (static_shapes below) and the
free-dimension overrides are recorded in the metadata. The op set is checked against the WebNN
EP's table. Chromium on Linux exposes no WebNN context, so the artifact is run on wasm with the
same static shapes, and the report says so.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target


class WebNnConfig(CompileBase):
    target: Literal["webnn"] = "webnn"
    precision: Literal["fp16", "fp32"] | None = Field(
        default=None, description="fp16 (default; fp32 I/O) or fp32."
    )
    keep_io_types: bool = Field(default=True, description="fp16: keep fp32 inputs and outputs.")
    fp16_block_ops: list[str] = Field(default_factory=list, description="fp16: op types kept in fp32.")
    max_size_mb: float = Field(
        default=2047.0, gt=0, description="Fail when the single .onnx file is bigger than this."
    )
    fail_on_fallback: bool = Field(
        default=False, description="Fail when an op is not in the WebNN EP's table."
    )


class WebNnTarget(Target):
    name = "webnn"
    runtime_name = "onnxruntime-web"
    browser = True
    emulated = "WebNN runs here only on wasm: timings would not reflect the device"
    Config = WebNnConfig
    extra = "core"
    requires = ("onnx", "onnxruntime")
    default_precision = "fp16"
    quant_scheme = "fp16"  # fp16 with fp32 I/O; int8 QDQ only when a recipe asks for it
    int8_scheme = "ort-qdq"
    static_shapes = True  # read by the export stage: no dynamic axes
    description = "onnxruntime-web WebNN EP (static shapes; checked on wasm in headless Chromium)"
    browser_note = (
        "WebNN artifact: checked on wasm with the same static shapes (no WebNN context in Chromium on Linux)"
    )

    def tool_versions(self) -> list[str]:
        return ["onnxruntime", "onnxsim"]  # web compile folds shapes with onnxsim

    def hardware(self) -> tuple[bool, str]:
        from vopt.runtimes.browser import missing

        reason = missing()
        if reason:
            return False, reason
        return True, "no WebNN context in Chromium on Linux: checked on wasm with the same static shapes"

    def compile(self, artifact, cfg: WebNnConfig, ctx):
        from vopt.targets.web import WebCompile, compile_web

        job = WebCompile(
            target=self.name,
            ep="webnn",
            ep_label="WebNN",
            precision=self.precision(cfg),
            static_shapes=True,
            keep_io_types=cfg.keep_io_types,
            fp16_block_ops=cfg.fp16_block_ops,
            max_size_mb=cfg.max_size_mb,
            fail_on_fallback=cfg.fail_on_fallback,
        )
        return compile_web(artifact, job, ctx)

    def runner(self, artifact, cfg: WebNnConfig) -> Runner | Unavailable:
        from vopt.runtimes.browser import runner

        return runner(artifact.path, ep="wasm")
