"""tflite: a LiteRT flatbuffer converted from the build's torch module by litert-torch (torch.export, then
lowered to TFLite ops), in fp32 or int8 (static int8 weights and activations by ai-edge-quantizer, calibrated
on vopt's images). It runs on ai-edge-litert's Interpreter (XNNPACK on CPU). litert-torch needs ml_dtypes 0.7
and an older pydantic than vopt's main environment, so the extra lives in its own venv
(constraints-tflite.txt, `make test-tflite`)."""

from __future__ import annotations

import importlib.util
from collections import Counter
from typing import Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.errors import BackendUnavailable, BuildError
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

PRECISIONS = ("fp32", "int8")


class TfliteConfig(CompileBase):
    target: Literal["tflite"] = "tflite"
    precision: Literal["fp32", "int8"] | None = Field(  # type: ignore[assignment]
        default=None,
        description="fp32 (default). int8 is made by the quantize stage after conversion "
        "(scheme litert-int8, ai-edge-quantizer): write quantize: {precision: int8}.",
    )
    threads: int | None = Field(default=2, description="Interpreter threads for validation and benchmarks.")


class TfliteTarget(Target):
    runner_settings = ("threads",)
    name = "tflite"
    runtime_name = "litert"
    Config = TfliteConfig
    extra = "tflite"
    # litert-torch 0.10 pins ml_dtypes 0.7 and typing-extensions < 4.13 (so pydantic 2.11), which the main
    # environment cannot take: its own venv, pinned by constraints-tflite.txt (as `make test-tflite` does).
    install_commands = (
        "python -m venv .venv-tflite",
        ".venv-tflite/bin/pip install -c constraints-tflite.txt torch==2.13.0",
        ".venv-tflite/bin/pip install -c constraints-tflite.txt -e '.[tflite]'",
    )
    install_bin = ".venv-tflite/bin"
    requires = ("litert_torch", "ai_edge_litert")
    # compile converts the build's torch module (ctx.artifacts), whatever the export step made after it.
    input_formats = ("torch-module", "onnx")
    description = "LiteRT / TFLite flatbuffer (litert-torch), run by ai-edge-litert"
    # int8 is the quantize stage's, after conversion: ai-edge-quantizer works on the .tflite, so calibration,
    # the held-out check, gates and the speed check are the same as on every other target.
    quant_scheme = "litert-int8"
    int8_scheme = "litert-int8"
    quantize_after_compile = True
    # litert-torch lowers aten ops through torch.export; no aten op is an NMS (torchvision's nms is a custom
    # op it has no lowering for), and LiteRT's NON_MAX_SUPPRESSION_V5 is reachable only from TensorFlow.
    nms = None
    nms_refusal = (
        "the tflite target cannot put NonMaxSuppression in the graph: litert-torch has no lowering for an "
        "NMS op (LiteRT's NON_MAX_SUPPRESSION_V5 comes only from TensorFlow); drop export.nms and run NMS on "
        "the host on output0 (Ultralytics' non_max_suppression, as vopt's validation does)"
    )

    def tool_versions(self) -> list[str]:
        return ["litert-torch", "ai-edge-litert", "ai-edge-quantizer", "torch"]

    def hardware(self) -> tuple[bool, str]:
        if importlib.util.find_spec("ai_edge_litert") is None:
            return False, f"no LiteRT runtime ({self.install_hint()})"
        return True, "LiteRT interpreter (XNNPACK) on this CPU"

    def compile(self, artifact: Artifact, cfg: TfliteConfig, ctx) -> Artifact:
        self.check_format(artifact)
        for module, what in (("litert_torch", "litert-torch"), ("ai_edge_litert", "ai-edge-litert")):
            if importlib.util.find_spec(module) is None:
                raise BackendUnavailable(f"the tflite target needs '{what}': {self.install_hint()}")
        import torch

        from vopt.models.resolve import OutputWrapper, family_of, load_module
        from vopt.targets.coreml import _torch_source
        from vopt.targets.metadata import effective_precision

        source = _torch_source(ctx)
        family = family_of(source)
        wrapped = OutputWrapper.wrap(load_module(source), family).eval()
        shape = list(ctx.model_input.shape)
        example = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        float_path = ctx.out("model_fp32.tflite")
        try:
            convert(wrapped, example, float_path)
        except Exception as exc:
            raise BuildError(
                f"litert-torch could not convert {family.name}: {describe_failure(exc)}", stage="compile"
            ) from exc
        path = float_path.rename(ctx.out("model.tflite"))
        from vopt.runtimes.litert import signature

        ins, outs = signature(path)
        ops = op_histogram(path)
        io = {
            "inputs": [{**d, "name": ctx.model_input.name} for d in ins],
            "outputs": [{**d, "name": n} for d, n in zip(outs, family.outputs, strict=False)],
        }
        precision = effective_precision(source, "fp32", built="fp32")
        ctx.report.update(
            converter="litert-torch",
            ops=dict(ops),
            op_count=sum(ops.values()),
            summary=f"litert-torch fp32, {sum(ops.values())} ops ({len(ops)} kinds)",
        )
        return source.derive(path, format="tflite", io=io, meta={"precision": precision})

    def runner(self, artifact: Artifact, cfg: TfliteConfig) -> Runner | Unavailable:
        if importlib.util.find_spec("ai_edge_litert") is None:
            return Unavailable(f"ai-edge-litert is not installed: {self.install_hint()}")
        from vopt.runtimes.litert import runner

        return runner(
            artifact.path,
            [t.name for t in artifact.io.inputs],
            [t.name for t in artifact.io.outputs],
            threads=getattr(cfg, "threads", 2),
        )


def convert(module, example, path) -> None:
    """torch module -> .tflite with litert-torch (NCHW float input, as the module takes it)."""
    from vopt.runtimes.litert import stdout_to_stderr

    with stdout_to_stderr():
        import litert_torch

        litert_torch.convert(module, (example,)).export(str(path))


def describe_failure(exc: Exception) -> str:
    """The op that stopped the converter, then where: MLIR says "failed to legalize operation 'tfl.pow'" and
    names the model source line; torch.export names an aten op."""
    import re

    from vopt.targets.coreml import _describe

    text = str(exc)
    op = re.search(r"legalize operation '([\w.]+)'", text)
    if not op:
        return _describe(exc)
    where = re.search(r"(\w+\.py):(\d+)", text)
    return f"op {op.group(1)} cannot be lowered to TFLite" + (
        f" (from {where.group(1)}:{where.group(2)})" if where else ""
    )


def op_histogram(path) -> Counter:
    """TFLite op kinds and counts in the converted graph (the op coverage the report shows)."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    return Counter(op["op_name"] for op in interp._get_ops_details())  # noqa: SLF001 - the only op listing LiteRT has
