"""`coreml-mlpackage`: a Core ML ML Program package. Core ML runs it only on macOS; here it is written and
read back (coremltools reads the spec on any OS)."""

from __future__ import annotations

import platform
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

from vopt.formats.base import Format

NAME = "coreml-mlpackage"


class CoreMlPackageFormat(Format):
    name: ClassVar[str] = NAME
    description: ClassVar[str] = "Core ML package"
    suffixes: ClassVar[tuple[str, ...]] = (".mlpackage",)
    extra: ClassVar[str] = "coreml"

    @classmethod
    def inspect(cls, path: Path) -> dict[str, Any]:
        from vopt.formats.metadata import dtype_name

        ct = import_coremltools()
        from coremltools.proto import FeatureTypes_pb2 as ft

        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
        desc = spec.description
        names = {v: k.lower() for k, v in ft.ArrayFeatureType.ArrayDataType.items()}

        def io(f: Any) -> dict[str, Any]:
            arr = f.type.multiArrayType
            return {"name": f.name, "shape": list(arr.shape), "dtype": names.get(arr.dataType, "?")}

        ops: Counter[str] = Counter()
        mix: Counter[str] = Counter()
        if spec.WhichOneof("Type") == "mlProgram":
            for fn in spec.mlProgram.functions.values():
                for block in fn.block_specializations.values():
                    for op in block.operations:
                        ops[op.type] += 1
                        if op.type == "const":
                            for o in op.outputs:
                                kind = _mil_dtype(o.type, dtype_name)
                                if kind not in ("string", "bool", "scalar"):  # op parameters, not tensors
                                    mix[kind] += 1
                        elif op.type.startswith("constexpr") and "quantized_data" in op.attributes:
                            # compressed weights: the stored (int8/uint8) tensor, not the fp16 it expands to
                            mix[_mil_dtype(op.attributes["quantized_data"].type, dtype_name)] += 1
        quant = (
            {"constexpr ops": sum(v for k, v in ops.items() if k.startswith("constexpr"))}
            if any(k.startswith("constexpr") for k in ops)
            else {}
        )
        return {
            "format": cls.name,
            "detail": f"{spec.WhichOneof('Type')}, spec v{spec.specificationVersion}",
            "inputs": [io(f) for f in desc.input],
            "outputs": [io(f) for f in desc.output],
            "op_types": dict(ops.most_common()),
            "precision_mix": dict(mix.most_common()),
            "quantization": quant,
            "metadata": dict(desc.metadata.userDefined),
        }


def import_coremltools() -> Any:
    """coremltools, without its import-time warnings that are expected off macOS (no native Core ML proxy,
    untested torch version): they would bury vopt's own output."""
    import logging

    log = logging.getLogger("coremltools")
    level = log.level
    if platform.system() != "Darwin":
        log.setLevel(logging.ERROR)
    try:
        import coremltools
    finally:
        log.setLevel(level)
    return coremltools


def _mil_dtype(value_type: Any, dtype_name: Any) -> str:
    from coremltools.proto import MIL_pb2

    t = value_type.tensorType if value_type.WhichOneof("type") == "tensorType" else None
    if t is None:
        return "scalar"
    return dtype_name(MIL_pb2.DataType.Name(t.dataType).lower().replace("float", "fp"))
