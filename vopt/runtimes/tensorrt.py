"""TensorRT: a readiness check of the ONNX that runs anywhere (onnx only), the engine builder, and a runner.
The builder and runner need the `tensorrt` package and an NVIDIA GPU."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only inside functions: the compile cache key imports this module on every plan
    import numpy as np

# The opset range TensorRT 10's ONNX parser accepts.
MIN_OPSET, MAX_OPSET = 9, 20

# ONNX ops TensorRT 10's parser imports (onnx-tensorrt docs/operators.md, TRT 10.x). Anything else needs a
# plugin.
_OPS = """
Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool BatchNormalization Cast CastLike Ceil
Celu Clip Concat Constant ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DepthToSpace DequantizeLinear
Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor Gather GatherElements GatherND Gelu Gemm
GlobalAveragePool GlobalLpPool GlobalMaxPool Greater GreaterOrEqual GridSample GroupNormalization GRU
HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN LayerNormalization
LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM LpNormalization LpPool MatMul Max MaxPool Mean Min
Mish Mod Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu QuantizeLinear
RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range Reciprocal ReduceL1 ReduceL2
ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin ReduceProd ReduceSum ReduceSumSquare Relu
Reshape Resize ReverseSequence RNN RoiAlign Round ScaledTanh Scan Scatter ScatterElements ScatterND Selu
Shape Shrink Sigmoid Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
"""
SUPPORTED_OPS = frozenset(_OPS.split())

# Quantized types TensorRT accepts in Q/DQ (it only does symmetric quantization: zero points must be 0).
QDQ_TYPES = {"int8", "float8_e4m3fn", "int4"}
INT32_MAX = 2**31 - 1


@dataclass
class Finding:
    level: str  # "error" blocks the build, "warning" may cost accuracy or speed
    check: str  # opset | op | qdq | int64 | shape
    message: str
    nodes: list[str] | None = None


def readiness(path: str | Path, profiles: dict[str, list[list[int]]] | None = None) -> dict[str, Any]:
    """Check an ONNX model against what TensorRT's parser and builder need, before any GPU is involved."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    findings: list[Finding] = []
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not MIN_OPSET <= opset <= MAX_OPSET:
        findings.append(
            Finding(
                "error",
                "opset",
                f"opset {opset}: TensorRT 10 parses opsets {MIN_OPSET}-{MAX_OPSET}; "
                "re-export with `export: {opset: 17}`",
            )
        )
    findings += _check_ops(proto)
    findings += _check_qdq(proto)
    findings += _check_int64(proto)
    findings += _check_shapes(proto, profiles or {})
    errors = [f for f in findings if f.level == "error"]
    return {
        "ready": not errors,
        "opset": opset,
        "nodes": len(proto.graph.node),
        "op_types": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        "errors": len(errors),
        "warnings": len(findings) - len(errors),
        "findings": [asdict(f) for f in findings],
    }


def _check_ops(proto: Any) -> list[Finding]:
    bad: dict[str, list[str]] = {}
    for n in proto.graph.node:
        if n.domain not in ("", "ai.onnx") or n.op_type not in SUPPORTED_OPS:
            key = f"{n.domain}::{n.op_type}" if n.domain not in ("", "ai.onnx") else n.op_type
            bad.setdefault(key, []).append(n.name)
    return [
        Finding(
            "error",
            "op",
            f"{op} ({len(names)} node(s)) is not supported by TensorRT's ONNX parser "
            "(needs a plugin or a different export)",
            names[:5],
        )
        for op, names in bad.items()
    ]


def _check_qdq(proto: Any) -> list[Finding]:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    inits = {i.name: i for i in proto.graph.initializer}
    consts = {
        n.output[0]: n.attribute[0].t for n in proto.graph.node if n.op_type == "Constant" and n.attribute
    }
    asym, unsigned, odd_types = [], [], set()
    for n in proto.graph.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        if n.domain not in ("", "ai.onnx"):
            continue  # already reported as an unsupported op
        zp_name = n.input[2] if len(n.input) > 2 else ""
        zp = inits.get(zp_name) or consts.get(zp_name)
        if zp is None:
            if n.op_type == "QuantizeLinear" and not zp_name:  # no zero point: ONNX quantizes to uint8
                unsigned.append(n.name)
                odd_types.add("uint8")
            continue
        dtype = onnx.helper.tensor_dtype_to_np_dtype(zp.data_type).name if zp.data_type else "?"
        if dtype not in QDQ_TYPES:
            unsigned.append(n.name)
            odd_types.add(dtype)
        if np.any(numpy_helper.to_array(zp) != 0):
            asym.append(n.name)
    out = []
    if unsigned:
        out.append(
            Finding(
                "error",
                "qdq",
                f"{len(unsigned)} Q/DQ node(s) use {', '.join(sorted(odd_types))}: TensorRT takes "
                "int8 (or fp8/int4) Q/DQ only; quantize with the tensorrt scheme (s8 symmetric)",
                unsigned[:5],
            )
        )
    if asym:
        out.append(
            Finding(
                "error",
                "qdq",
                f"{len(asym)} Q/DQ node(s) have a non-zero zero point: TensorRT needs symmetric quantization",
                asym[:5],
            )
        )
    return out


def _check_int64(proto: Any) -> list[Finding]:
    import numpy as np
    import onnx
    from onnx import numpy_helper

    out = []
    io64 = [
        v.name
        for v in [*proto.graph.input, *proto.graph.output]
        if v.type.tensor_type.elem_type == onnx.TensorProto.INT64
    ]
    if io64:
        out.append(
            Finding(
                "error",
                "int64",
                f"int64 graph input/output {', '.join(io64)}: TensorRT bindings need int32; "
                "cast at the model boundary",
                io64,
            )
        )
    big = []
    for init in proto.graph.initializer:
        if init.data_type == onnx.TensorProto.INT64 and 0 < np.prod(init.dims or [1]) <= 1 << 16:
            arr = numpy_helper.to_array(init)
            if arr.size and (arr.max() > INT32_MAX or arr.min() < -INT32_MAX - 1):
                big.append(init.name)
    if big:
        out.append(
            Finding(
                "warning",
                "int64",
                f"{len(big)} int64 constant(s) outside int32 range (e.g. INT64_MAX slice ends): "
                "TensorRT clamps them to int32",
                big[:5],
            )
        )
    return out


def _check_shapes(proto: Any, profiles: dict[str, list[list[int]]]) -> list[Finding]:
    out = []
    init_names = {i.name for i in proto.graph.initializer}
    for value in proto.graph.input:
        if value.name in init_names:
            continue
        dims = value.type.tensor_type.shape.dim
        dynamic = [i for i, d in enumerate(dims) if not d.dim_value]
        if dynamic and value.name not in profiles:
            out.append(
                Finding(
                    "error",
                    "shape",
                    f"input {value.name} has dynamic dims {dynamic} but no optimization profile: "
                    "set `model.input.dynamic` (e.g. {batch: [1, 8, 32]})",
                )
            )
        elif dynamic:
            lo, _, hi = profiles[value.name]
            if len(lo) != len(dims):
                out.append(
                    Finding(
                        "error",
                        "shape",
                        f"profile for {value.name} has rank {len(lo)}, the input has {len(dims)}",
                    )
                )
            elif any(dims[i].dim_value and not lo[i] == hi[i] == dims[i].dim_value for i in range(len(dims))):
                out.append(Finding("error", "shape", f"profile for {value.name} changes a static dim"))
    return out


def profiles_from_dynamic(
    input_name: str, shape: list[int], dynamic: dict[str, list[int]] | None
) -> dict[str, list[list[int]]]:
    """[min, opt, max] shapes per input from the recipe's `model.input.dynamic` ({batch|height|width: [min,
    opt, max]})."""
    if not dynamic:
        return {}
    axes = {"batch": 0, "height": 2, "width": 3}
    lo, opt, hi = list(shape), list(shape), list(shape)
    for name, (mn, op, mx) in dynamic.items():
        i = axes[name]
        lo[i], opt[i], hi[i] = mn, op, mx
    return {input_name: [lo, opt, hi]}


def gpu_compute_capability() -> str | None:
    """'sm90' style, from nvidia-smi (no CUDA Python package needed); None without an NVIDIA GPU."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return None
    try:
        text = (
            subprocess.run(
                [smi, "--query-gpu=compute_cap", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            )
            .stdout.strip()
            .splitlines()
        )
    except (subprocess.SubprocessError, OSError):
        return None
    return f"sm{text[0].replace('.', '')}" if text and text[0] else None


def engine_name(trt_version: str, compute_capability: str) -> str:
    """Engines only run on the TensorRT version and GPU architecture they were built for: the name says
    which."""
    return f"model.trt{trt_version}.{compute_capability}.engine"


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    flags: list[str],
    workspace_gb: float,
    profiles: dict[str, list[list[int]]],
    timing_cache: Path | None,
    builder: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """`builder`: vopt.targets.tensorrt.builder_settings (optimization level, extra BuilderFlags)."""
    import tensorrt as trt

    major = int(trt.__version__.split(".")[0])
    if major < 10:
        raise RuntimeError(
            f"TensorRT {trt.__version__}: vopt builds engines with TensorRT 10 or 11 (explicit Q/DQ)"
        )

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError("ONNX parser: " + "; ".join(errors[:5]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    for flag in flags:
        if flag == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        elif flag == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit Q/DQ from the quantize stage: no calibrator
        elif flag == "bf16":
            config.set_flag(trt.BuilderFlag.BF16)
    builder = builder or {}
    if builder.get("builder_optimization_level") is not None:
        config.builder_optimization_level = int(builder["builder_optimization_level"])
    for name in builder.get("extra_flags", []):
        config.set_flag(getattr(trt.BuilderFlag, name))
    cache_bytes = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    if profiles:
        profile = builder.create_optimization_profile()
        for name, (lo, opt, hi) in profiles.items():
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT builder returned no engine (see the TensorRT log above)")
    Path(engine_path).write_bytes(bytes(serialized))
    if timing_cache:
        timing_cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = timing_cache.with_suffix(".tmp")
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
        tmp.replace(timing_cache)
    return {
        "tensorrt": trt.__version__,
        "layers": network.num_layers,
        "timing_cache": str(timing_cache) if timing_cache else None,
    }


def runner(engine_path: str | Path) -> Any:
    """Run an engine with torch CUDA tensors as device buffers."""
    import numpy as np
    import tensorrt as trt
    import torch

    from vopt.runtimes.base import Runner

    logger = trt.Logger(trt.Logger.WARNING)
    runtime = trt.Runtime(logger)
    runtime.engine_host_code_allowed = True  # version-compatible engines carry their own lean runtime
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    context = engine.create_execution_context()
    names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
    inputs = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
    outputs = [n for n in names if n not in inputs]
    stream = torch.cuda.Stream()

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        keep = []
        for name in inputs:
            t = torch.from_numpy(np.ascontiguousarray(feeds[name])).cuda()
            keep.append(t)
            context.set_input_shape(name, tuple(t.shape))
            context.set_tensor_address(name, t.data_ptr())
        result = {}
        for name in outputs:
            dtype = torch.from_numpy(np.zeros(0, dtype=trt.nptype(engine.get_tensor_dtype(name)))).dtype
            t = torch.empty(tuple(context.get_tensor_shape(name)), dtype=dtype, device="cuda")
            context.set_tensor_address(name, t.data_ptr())
            result[name] = t
        context.execute_async_v3(stream.cuda_stream)
        stream.synchronize()
        return {k: v.float().cpu().numpy() for k, v in result.items()}

    return Runner(
        run=run,
        runtime="tensorrt",
        info={"tensorrt": trt.__version__, "device": torch.cuda.get_device_name()},
    )
