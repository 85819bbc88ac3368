"""The compile step shared by the webgpu and webnn targets: one self-contained .onnx for onnxruntime-web."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from vopt.core.artifact import Artifact, TensorSpec
from vopt.errors import BuildError

# A browser fetches the model into one ArrayBuffer and protobuf caps a message at 2 GiB.
PROTOBUF_LIMIT_MB = 2047.0


@dataclass
class WebCompile:
    target: str  # webgpu | webnn
    ep: str  # the onnxruntime-web EP whose op table the model is checked against
    ep_label: str  # how messages name that EP ("WebGPU")
    precision: str  # fp32 | fp16 | int8
    static_shapes: bool
    keep_io_types: bool = True
    fp16_block_ops: list[str] = field(default_factory=list)
    max_size_mb: float = PROTOBUF_LIMIT_MB
    fail_on_fallback: bool = False
    # onnxruntime-web session settings for this EP (graph capture, preferred layout): they cannot live in the
    # graph, so they travel in the metadata and vopt's browser runner applies them.
    session_options: dict[str, Any] = field(default_factory=dict)


def compile_web(artifact: Artifact, job: WebCompile, ctx: Any) -> Artifact:
    import onnx

    from vopt.targets.metadata import artifact_metadata, effective_precision, set_onnx_metadata
    from vopt.web.ops import check_model

    if artifact.format != "onnx":
        raise BuildError(
            f"the {job.target} target compiles onnx, not {artifact.format} ({artifact.file.name})",
            stage="compile",
        )
    proto = onnx.load(artifact.path)  # pulls in any external data: the browser gets one file
    free_dims = _fix_shapes(proto, ctx.model_input.shape) if job.static_shapes else {}
    if job.static_shapes and not free_dims:
        # Exported static already: record what a page loading a dynamic variant must pin (vopt names its
        # axes so).
        free_dims = _named_axes(ctx.model_input)
    built, precision_note = _apply_precision(proto, artifact, job, ctx)
    precision = effective_precision(artifact, job.precision, built=built)
    ops = check_model(proto, job.ep)
    meta = artifact_metadata(artifact, ctx.build_name, job.target, precision)
    meta.update(
        {
            "vopt.web.ep": job.ep,
            "vopt.web.freeDimensionOverrides": json.dumps(free_dims),
            "vopt.web.fallback_ops": json.dumps(ops["fallback_ops"]),
        }
    )
    if job.session_options:
        meta["vopt.web.session_options"] = json.dumps({"ep": job.ep, **job.session_options})
    set_onnx_metadata(proto, meta)
    path = ctx.out("model.onnx")
    data = proto.SerializeToString()  # raises for > 2 GiB: external data cannot be fetched as one file
    size_mb = len(data) / 2**20
    if size_mb > job.max_size_mb:
        raise BuildError(
            f"the model is {size_mb:.0f} MB, over max_size_mb={job.max_size_mb:.0f}: "
            "too big for one browser fetch",
            stage="compile",
        )
    path.write_bytes(data)

    ep_name = job.ep_label
    if ops["fallback_ops"]:
        listed = ", ".join(f"{op} x{n}" for op, n in ops["fallback_ops"].items())
        message = (
            f"{ops['fallback_nodes']} of {ops['nodes']} nodes are not in the {ep_name} EP's op table "
            f"and would run on wasm/CPU: {listed}"
        )
        if job.fail_on_fallback:
            raise BuildError(message + " (fail_on_fallback: true)", stage="compile")
        ctx.warn(message)
    ctx.report.update(
        ops=ops,
        precision=precision,
        free_dimension_overrides=free_dims,
        size_mb=round(size_mb, 3),
        static_shapes=job.static_shapes,
        nodes=len(proto.graph.node),
    )
    placement = "all ops in the table"
    if ops["fallback_ops"]:
        placement = f"{ops['fallback_nodes']} nodes fall back to wasm"
    ctx.report["summary"] = (
        f"{precision_note}, {len(proto.graph.node)} nodes, {ep_name} EP: {placement}, {size_mb:.2f} MB"
    )
    io = artifact.io.model_copy(deep=True)
    io.inputs = [TensorSpec(name=i.name, shape=_shape(i), dtype=_dtype(i)) for i in _graph_inputs(proto)]
    io.outputs = [TensorSpec(name=o.name, shape=_shape(o), dtype=_dtype(o)) for o in proto.graph.output]
    web = {"ep": job.ep, "free_dimension_overrides": free_dims, "fallback_ops": ops["fallback_ops"]}
    return artifact.derive(path, format="onnx", io=io.model_dump(), meta={"web": web, "precision": precision})


def _fix_shapes(proto: Any, shape: list[int]) -> dict[str, int]:
    """Replace every free input dimension by the recipe's input shape; returns the overrides used."""
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    overrides: dict[str, int] = {}
    for value in _graph_inputs(proto)[:1]:
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and axis < len(shape):
                overrides[dim.dim_param] = int(shape[axis])
    for name, size in overrides.items():
        make_dim_param_fixed(proto.graph, name, size)
    if overrides:
        fix_output_shapes(proto)
        _fold_shapes(proto)
    return overrides


def _fold_shapes(proto: Any) -> None:
    """With the dims fixed, the shape arithmetic (Shape/Gather/Concat that ORT keeps on CPU) is constant."""
    try:
        import onnxsim
    except ImportError:
        return
    try:
        folded, ok = onnxsim.simplify(proto)
    except Exception:  # noqa: BLE001 - folding is an optimization; the unfolded model is still correct
        return
    if ok:
        proto.CopyFrom(folded)


def _named_axes(spec: Any) -> dict[str, int]:
    names = {0: "batch", 2: "height", 3: "width"}
    wanted = {"batch"} | set(spec.dynamic or {})
    return {
        name: int(spec.shape[axis])
        for axis, name in names.items()
        if name in wanted and axis < len(spec.shape)
    }


def _apply_precision(proto: Any, artifact: Artifact, job: WebCompile, ctx: Any) -> tuple[str, str]:
    """Convert the model to the job's precision; returns (the precision it really has, a summary note)."""
    import onnx

    from vopt.targets.metadata import qdq_precision

    types = {t.data_type for t in proto.graph.initializer}
    qdq = qdq_precision(proto)
    if job.precision == "fp32":
        if onnx.TensorProto.FLOAT16 in types or qdq:
            ctx.warn(
                "precision fp32, but the input model already has fp16 or quantized weights "
                "(from the quantize stage)"
            )
            return (qdq or "fp16"), f"{qdq or 'fp16'} (from the quantize stage)"
        return "fp32", "fp32"
    if job.precision == "fp16":
        if qdq:
            ctx.warn(f"precision fp16, but the quantize stage made an {qdq} QDQ model: kept as it is")
            return qdq, f"{qdq} QDQ (from the quantize stage)"
        if onnx.TensorProto.FLOAT16 in types:
            return "fp16", "fp16 (converted by the quantize stage)"
        from vopt.quant.fp16 import convert_with_ranges

        # a pipeline's component keeps the nodes whose recorded ranges would overflow fp16 in fp32
        converted, fp16 = convert_with_ranges(
            proto, ctx, artifact.path, keep_io_types=job.keep_io_types, op_block=job.fp16_block_ops
        )
        if fp16["kept_fp32_nodes"]:
            ctx.report["fp16"] = fp16
        proto.CopyFrom(converted)
        return "fp16", "fp16" + (" with fp32 I/O" if job.keep_io_types else "")
    if job.precision == "int8" and qdq:
        return qdq, f"{qdq} QDQ (from the quantize stage)"
    if job.precision == "int8":  # the plan asks for a quantize: section first; this is for direct callers
        raise BuildError(
            f"precision int8 on {job.target} is made by the quantize stage: add "
            "`quantize: {precision: int8}` to the recipe",
            stage="compile",
        )
    raise BuildError(
        f"precision {job.precision} is not supported by the {job.target} target", stage="compile"
    )


def _graph_inputs(proto: Any) -> list[Any]:
    inits = {t.name for t in proto.graph.initializer}
    return [i for i in proto.graph.input if i.name not in inits]


def _shape(value: Any) -> list[int | str]:
    return [d.dim_param if d.dim_param else int(d.dim_value) for d in value.type.tensor_type.shape.dim]


def _dtype(value: Any) -> str:
    import onnx

    return str(onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type))
