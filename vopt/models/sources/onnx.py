"""`onnx`: start from an ONNX file. The load stage copies it; fuse, prune and export do not run."""

from __future__ import annotations

from pathlib import Path

from vopt.errors import BuildError, first_line
from vopt.models.sources.base import LoadedModel, Source
from vopt.models.sources.plain import family_of_spec
from vopt.models.sources.torchscript import _file
from vopt.pipeline.artifact import IOSpec, TensorSpec

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


class OnnxSource(Source):
    name = "onnx"

    def load(self, spec) -> LoadedModel:
        path = _file(spec, "ONNX (.onnx)")
        check_onnx(path)
        family = family_of_spec(spec)
        return LoadedModel(
            None,
            family,
            spec.task or family.task,
            labels=spec.labels,
            onnx_path=path,
            notes=[f"ONNX {path.name}: torch stages (fuse, prune, export) skipped"],
        )


def check_onnx(path: Path) -> None:
    """Fail early, in one line, on a truncated or foreign file."""
    import onnx

    try:
        proto = onnx.load(str(path))
        onnx.checker.check_model(proto)
    except Exception as exc:
        raise BuildError(
            f"{path} is not a valid ONNX model (truncated or corrupt?): "
            f"{first_line(exc, limit=200, with_type=True)}",
            stage="load",
        ) from None
    if not proto.graph.input or not proto.graph.output:
        raise BuildError(f"{path}: the ONNX graph has no inputs or no outputs", stage="load")


def onnx_io(path: str | Path) -> IOSpec:
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    inits = {i.name for i in proto.graph.initializer}

    def spec(v) -> TensorSpec:
        t = v.type.tensor_type
        shape = [d.dim_param if d.dim_param else int(d.dim_value) for d in t.shape.dim]
        return TensorSpec(name=v.name, shape=shape, dtype=_DTYPES.get(t.elem_type, str(t.elem_type)))

    return IOSpec(
        inputs=[spec(v) for v in proto.graph.input if v.name not in inits],
        outputs=[spec(v) for v in proto.graph.output],
    )
