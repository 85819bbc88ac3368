"""The one table of plugins. Values are 'module:attr' strings, imported only when used,
so `vopt --help` never pays for torch, openvino or coremltools."""

from __future__ import annotations

import importlib
from typing import Any

# Stages, in the order a plan runs them (the compile target may move `quantize` after `compile`).
STAGES: dict[str, str] = {
    "load": "vopt.stages.load:LoadStage",
    "fuse": "vopt.stages.fuse:FuseStage",
    "prune": "vopt.stages.prune:PruneStage",
    "export": "vopt.stages.export:ExportStage",
    "quantize": "vopt.stages.quantize:QuantizeStage",
    "compile": "vopt.stages.compile:CompileStage",
    "validate": "vopt.stages.validate:ValidateStage",
    "benchmark": "vopt.stages.benchmark:BenchmarkStage",
}

TARGETS: dict[str, str] = {
    "cpu": "vopt.targets.cpu:CpuTarget",
    "openvino": "vopt.targets.openvino:OpenVinoTarget",
    "qnn": "vopt.targets.qnn:QnnTarget",
    "rocm": "vopt.targets.rocm:RocmTarget",
    "tensorrt": "vopt.targets.tensorrt:TensorRtTarget",
    "coreml": "vopt.targets.coreml:CoreMlTarget",
    "webgpu": "vopt.targets.webgpu:WebGpuTarget",
    "webnn": "vopt.targets.webnn:WebNnTarget",
    "tflite": "vopt.targets.tflite:TfliteTarget",
}

# Quantization schemes (vopt.quant.schemes.base.Scheme): each module declares its own facts and options.
SCHEMES: dict[str, str] = {
    "ort-qdq": "vopt.quant.schemes.ort_qdq:OrtQdqScheme",
    "trt-qdq": "vopt.quant.schemes.ort_qdq:TensorRtQdqScheme",
    "qnn-qdq": "vopt.quant.schemes.qnn:QnnQdqScheme",
    "nncf": "vopt.quant.schemes.nncf_ov:NncfScheme",
    "coreml-weights": "vopt.quant.schemes.coreml:CoreMlWeightScheme",
    "fp16": "vopt.quant.schemes.fp16:Fp16Scheme",
    "int4-weight": "vopt.quant.schemes.int4:Int4WeightScheme",
    "litert-int8": "vopt.quant.schemes.litert:LitertInt8Scheme",
}

SOURCES: dict[str, str] = {
    "hf": "vopt.models.sources.hf:HfSource",
    "torch": "vopt.models.sources.checkpoint:CheckpointSource",
    "python": "vopt.models.sources.python:PythonSource",
    "torchscript": "vopt.models.sources.torchscript:TorchScriptSource",
    "exported": "vopt.models.sources.exported:ExportedSource",
    "onnx": "vopt.models.sources.onnx:OnnxSource",
    "timm": "vopt.models.sources.timm:TimmSource",
    "torchvision": "vopt.models.sources.torchvision:TorchvisionSource",
}

# Recipe checks only a plugin can make, run when a recipe loads (file:line errors before any work).
PLUGIN_CHECKS: dict[str, str] = {
    "quantize": "vopt.quant.schemes:recipe_problems",  # quantize.options against the scheme's Options
}

# Family modules register themselves with @register_family when imported.
FAMILY_MODULES: tuple[str, ...] = (
    "vopt.models.families.resnet",
    "vopt.models.families.vit",
    "vopt.models.families.detr",
    "vopt.models.families.swin",
    "vopt.models.families.convnext",
    "vopt.models.families.mobilenet",
    "vopt.models.families.efficientnet",
    "vopt.models.families.segformer",
    "vopt.models.families.rt_detr",
    "vopt.models.families.yolos",
    "vopt.models.families.clip_vision",
    "vopt.models.families.dinov2",
)

# Optional backends for `vopt doctor`: import name, distribution name, pip extra, what it does.
BACKENDS: tuple[tuple[str, str, str, str], ...] = (
    ("onnxruntime", "onnxruntime", "core", "ONNX Runtime (cpu, rocm check, validation)"),
    ("openvino", "openvino", "openvino", "OpenVINO runtime and converter"),
    ("nncf", "nncf", "openvino", "NNCF quantization for OpenVINO"),
    ("onnxruntime_qnn", "onnxruntime-qnn", "qnn", "Qualcomm QNN EP with the HTP simulator"),
    ("coremltools", "coremltools", "coreml", "CoreML converter"),
    ("tensorrt", "tensorrt", "tensorrt", "TensorRT engine builder"),
    ("ai_edge_litert", "ai-edge-litert", "tflite", "LiteRT (TFLite) runtime"),
    ("torch_pruning", "torch-pruning", "prune", "structural pruning"),
    ("onnxsim", "onnxsim", "simplify", "ONNX simplifier"),
    ("onnxslim", "onnxslim", "simplify", "ONNX simplifier (fallback)"),
)


def load_object(spec: str) -> Any:
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def _lookup(table: dict[str, str], kind: str, name: str) -> Any:
    from vopt.errors import RecipeError
    from vopt.recipe.suggest import did_you_mean

    if name not in table:
        raise RecipeError(f"unknown {kind} '{name}'{did_you_mean(name, table)}; known: {', '.join(table)}")
    return load_object(table[name])


def get_stage(name: str) -> Any:
    return _lookup(STAGES, "stage", name)


def get_target(name: str) -> Any:
    """Returns an instance of the target plugin."""
    return _lookup(TARGETS, "target", name)()


def get_scheme(name: str) -> Any:
    """Returns the scheme class (its facts are class attributes; the stage makes one per run)."""
    return _lookup(SCHEMES, "scheme", name)


def get_source(name: str) -> Any:
    return _lookup(SOURCES, "source", name)()
