"""`onnx`: an ONNX model file, run on ONNX Runtime here."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from vopt.core.artifact import Artifact, IOSpec, TensorSpec
from vopt.formats.base import Format

NAME = "onnx"

_DTYPES = {
    1: "float32",
    10: "float16",
    11: "float64",
    7: "int64",
    6: "int32",
    9: "bool",
    2: "uint8",
    3: "int8",
}


class OnnxFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "ONNX"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)
    runtime_module: ClassVar[str | None] = "vopt.runtimes.ort"
    runtime_import: ClassVar[str | None] = "onnxruntime"
    runtime_name: ClassVar[str | None] = "onnxruntime"
    check_label: ClassVar[str | None] = "onnxruntime-cpu"
    profiler: ClassVar[str | None] = "vopt.profiling.ort:profile_onnx"
    reference: ClassVar[bool] = True
    portable: ClassVar[bool] = True
    writes_metadata: ClassVar[bool] = True

    @classmethod
    def companions(cls, path: Path) -> list[Path]:
        """External-data files the model points at (every model over 2 GB has them)."""
        if not path.is_file():
            return []
        return [path.parent / name for name in external_data_files(path)]

    @classmethod
    def io(cls, path: Path, before: IOSpec) -> IOSpec:
        return onnx_io(path)

    @classmethod
    def read_metadata(cls, path: Path) -> dict[str, str]:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        return {p.key: p.value for p in proto.metadata_props}

    @classmethod
    def set_metadata(cls, path: Path, meta: dict[str, str]) -> None:
        import onnx

        proto = onnx.load(str(path), load_external_data=False)
        set_onnx_metadata(proto, meta)
        save_onnx(proto, path)

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        return inspect_onnx(path, cls.name)

    @classmethod
    def bare_artifact(cls, path: Path) -> Artifact:
        """Read the I/O and vopt metadata from the protobuf (no weights, no session)."""
        import onnx

        from vopt.formats.metadata import preprocess_from

        proto = onnx.load(str(path), load_external_data=False)
        meta = {p.key: p.value for p in proto.metadata_props}
        io = onnx_io(path)
        inp = io.inputs[0]
        return Artifact(
            path=str(path),
            format=cls.name,
            io=IOSpec(inputs=[inp], outputs=[TensorSpec(name=o.name, shape=[]) for o in io.outputs]),
            preprocess=preprocess_from(meta, inp.shape),
            meta={"family": meta.get("vopt.family"), "task": meta.get("vopt.task")},
        )


def set_onnx_metadata(proto: Any, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in meta.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value


def save_onnx(proto: Any, path: Path) -> None:
    """Save a model read with `load_external_data=False` back in place: its external-data files stay as they
    are (the protobuf still points at them), and a model under 2 GB stays one file."""
    import onnx

    onnx.save(proto, str(path))


def external_data_files(path: Path) -> list[str]:
    """The file names (relative to the model) that hold its external tensors, in first-use order."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    names: list[str] = []
    for tensor in _tensors(proto.graph):
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            location = next((e.value for e in tensor.external_data if e.key == "location"), None)
            if location and location not in names:
                names.append(location)
    return names


def _tensors(graph: Any) -> Any:
    """Every tensor stored in a graph: initializers and tensor attributes, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _tensors(attr.g)
            for sub in attr.graphs:
                yield from _tensors(sub)


def _dim(d: Any, index: int) -> int | str:
    """A dimension as vopt's io spec has it: its size, or a name when the file leaves it open. A size of 0 or
    less with no name (PaddlePaddle writes `dim_value: -1`) is open, never a batch of -1."""
    if d.dim_param:
        return str(d.dim_param)
    if d.HasField("dim_value") and d.dim_value > 0:
        return int(d.dim_value)
    return "batch" if index == 0 else f"dim_{index}"


def onnx_io(path: str | Path) -> IOSpec:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}

    def spec(v: Any) -> TensorSpec:
        t = v.type.tensor_type
        shape = [_dim(d, i) for i, d in enumerate(t.shape.dim)]
        return TensorSpec(name=v.name, shape=shape, dtype=_DTYPES.get(t.elem_type, str(t.elem_type)))

    return IOSpec(
        inputs=[spec(v) for v in proto.graph.input if v.name not in inits],
        outputs=[spec(v) for v in proto.graph.output],
    )


def inspect_onnx(path: Path, fmt: str, detail_extra: str = "") -> dict[str, Any]:
    import onnx

    from vopt.formats.metadata import dtype_name

    proto = onnx.load(str(path), load_external_data=False)
    g = proto.graph
    inits = {i.name for i in g.initializer}

    def io(v: Any) -> dict[str, Any]:
        t = v.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {
            "name": v.name,
            "shape": shape,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
        }

    ops = Counter((n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in g.node)
    mix = Counter(dtype_name(onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name) for i in g.initializer)
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), "?")
    quant = {}
    q = ops.get("QuantizeLinear", 0) + ops.get("com.microsoft.QuantizeLinear", 0)
    dq = ops.get("DequantizeLinear", 0) + ops.get("com.microsoft.DequantizeLinear", 0)
    if q or dq:
        quant = {"Q": q, "DQ": dq, "scheme": "QDQ"}
    return {
        "format": fmt,
        "detail": f"opset {opset}{detail_extra}",
        "inputs": [io(v) for v in g.input if v.name not in inits],
        "outputs": [io(v) for v in g.output],
        "op_types": dict(ops.most_common()),
        "precision_mix": dict(mix.most_common()),
        "quantization": quant,
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }


def is_ep_context(path: Path) -> bool:
    """An EPContext model: a precompiled device binary wrapped in ONNX (QNN's context cache)."""
    import onnx

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # noqa: BLE001 - not ONNX at all: not an EPContext model either
        return False
    return any(n.op_type == "EPContext" for n in proto.graph.node)
