from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, out, print_json


@handles_errors
def command(
    artifact: Path = typer.Argument(
        ...,
        help="An .onnx file, an OpenVINO IR (.xml or its directory), an .mlpackage, "
        "a TensorRT engine directory, or a build directory.",
    ),
    target: str = typer.Option(
        None, "--check", help="Also run a target's pre-build check on an ONNX (targets with one: tensorrt)."
    ),
    top: int = typer.Option(15, "--top", help="How many op types to list."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    from vopt.errors import RecipeError

    if not artifact.exists():
        raise RecipeError(f"no such artifact: {artifact}")
    info = describe(artifact)
    if target:
        from vopt.registry import TARGETS, get_target

        checker = get_target(target)
        if not checker.has_onnx_check:
            having = [n for n in TARGETS if get_target(n).has_onnx_check]
            raise RecipeError(
                f"--check: the {target} target has no pre-build check (targets with one: {', '.join(having)})"
            )
        if info["format"] != "onnx":
            raise RecipeError(f"--check {target} needs an ONNX model, got {info['format']}")
        info[f"{target}_readiness"] = checker.check_onnx(info["path"])
    if json_out:
        print_json(info)
        return
    _print(info, top)


def _print(info: dict, top: int) -> None:
    from rich.markup import escape

    from vopt.cli.output import print_table

    out.print(f"[bold]{escape(info['path'])}[/]", soft_wrap=True)
    out.print(
        f"  format     {info['format']}" + (f" ({escape(info['detail'])})" if info.get("detail") else "")
    )
    out.print(f"  size       {info['size_bytes'] / 1e6:.2f} MB")
    print_table(
        ["", "name", "shape", "dtype"],
        [
            [kind[:-1], escape(io["name"]), escape(str(io["shape"])), escape(io["dtype"])]
            for kind in ("inputs", "outputs")
            for io in info.get(kind, [])
        ],
    )
    ops = info.get("op_types", {})
    if ops:
        shown = list(ops.items())[:top]
        rest = sum(ops.values()) - sum(v for _, v in shown)
        line = ", ".join(f"{k} {v}" for k, v in shown) + (f", … {rest} more" if rest else "")
        out.print(f"  ops        {sum(ops.values())} nodes: {escape(line)}")
    mix = info.get("precision_mix", {})
    if mix:
        out.print("  precision  " + ", ".join(f"{k}: {v} tensors" for k, v in mix.items()))
    if info.get("quantization"):
        out.print("  quantized  " + escape(", ".join(f"{k}={v}" for k, v in info["quantization"].items())))
    meta = info.get("metadata", {})
    ours = {k: v for k, v in sorted(meta.items()) if k.startswith("vopt.")}
    others = len(meta) - len(ours)
    if meta:
        out.print("  metadata" + (f"   (+ {others} other key(s); --json shows all)" if others else ""))
        for k, v in ours.items():
            text = v if len(str(v)) <= 100 else str(v)[:97] + "..."
            out.print(f"    {escape(k)} = {escape(str(text))}")
    else:
        out.print("  metadata   none (not built by vopt)")
    for key in [k for k in info if k.endswith("_readiness")]:  # `--check <target>`
        r = info[key]
        status = "[green]ready[/]" if r["ready"] else f"[red]{r['errors']} error(s)[/]"
        out.print(
            f"  {key.removesuffix('_readiness'):<10} {status}, {r['warnings']} warning(s), opset {r['opset']}"
        )
        for f in r["findings"]:
            out.print(f"    {f['level']}: {f['check']}: {escape(f['message'])}")


# -- describing artifacts (no heavy imports until a format needs one) ----------------------------------


def describe(path: Path) -> dict:
    from vopt.errors import RecipeError
    from vopt.pipeline.artifact import path_size

    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        found = [
            p
            for p in sorted(path.iterdir())
            if p.name not in ("manifest.json",) and not p.name.startswith("report")
        ]
        if not found:
            raise RecipeError(f"{path}: build directory without an artifact")
        path = found[0]
    if path.is_dir() and any(path.glob("*_ctx.onnx")):  # a QNN EPContext model with its external .bin
        path = sorted(path.glob("*_ctx.onnx"))[0]
    if path.suffix == ".onnx":
        info = _onnx(path)
    elif path.suffix == ".xml" or (path.is_dir() and any(path.glob("*.xml"))):
        info = _openvino(path)
    elif path.suffix == ".mlpackage":
        info = _coreml(path)
    elif path.suffix == ".engine" or (path.is_dir() and any(path.glob("*.engine"))):
        info = _engine(path)
    else:
        raise RecipeError(
            f"{path}: unknown artifact type (expected .onnx, OpenVINO .xml/dir, .mlpackage or .engine)"
        )
    info["path"] = str(path)
    # What the artifact is, as vopt labelled it when it was built (the manifest and report say the same).
    info["precision"] = info["metadata"].get("vopt.precision")
    info["size_bytes"] = (
        path_size(path) if path.suffix != ".xml" else path_size(path) + path_size(path.with_suffix(".bin"))
    )
    return info


def _onnx(path: Path) -> dict:
    from collections import Counter

    import onnx

    proto = onnx.load(str(path))
    g = proto.graph
    inits = {i.name for i in g.initializer}

    def io(v) -> dict:
        t = v.type.tensor_type
        shape = [d.dim_param or d.dim_value for d in t.shape.dim]
        return {
            "name": v.name,
            "shape": shape,
            "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name,
        }

    ops = Counter((n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}") for n in g.node)
    mix = Counter(_dtype_name(onnx.helper.tensor_dtype_to_np_dtype(i.data_type).name) for i in g.initializer)
    fmt, detail = (
        "onnx",
        f"opset {next((o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')), '?')}",
    )
    if ops.get("com.microsoft.EPContext"):
        fmt, detail = "qnn-context", detail + ", EPContext (precompiled context binary)"
    quant = {}
    q = ops.get("QuantizeLinear", 0) + ops.get("com.microsoft.QuantizeLinear", 0)
    dq = ops.get("DequantizeLinear", 0) + ops.get("com.microsoft.DequantizeLinear", 0)
    if q or dq:
        quant = {"Q": q, "DQ": dq, "scheme": "QDQ"}
    return {
        "format": fmt,
        "detail": detail,
        "inputs": [io(v) for v in g.input if v.name not in inits],
        "outputs": [io(v) for v in g.output],
        "op_types": dict(ops.most_common()),
        "precision_mix": dict(mix.most_common()),
        "quantization": quant,
        "metadata": {p.key: p.value for p in proto.metadata_props},
    }


def _openvino(path: Path) -> dict:
    from collections import Counter

    import openvino as ov

    xml = path if path.suffix == ".xml" else sorted(path.glob("*.xml"))[0]
    model = ov.Core().read_model(str(xml))

    def io(port) -> dict:
        try:
            name = port.get_any_name()
        except RuntimeError:
            name = "?"
        return {
            "name": name,
            "shape": str(port.get_partial_shape()),
            "dtype": port.get_element_type().get_type_name(),
        }

    ops = Counter(op.get_type_name() for op in model.get_ordered_ops())
    mix = Counter(
        _dtype_name(op.get_output_element_type(0).get_type_name())
        for op in model.get_ordered_ops()
        if op.get_type_name() == "Constant"
    )
    meta = {}
    rt = model.get_rt_info()
    if "vopt" in rt:
        for key, value in rt["vopt"].items():
            meta[f"vopt.{key}"] = value.astype(str) if hasattr(value, "astype") else str(value)
    quant = (
        {"FakeQuantize": ops["FakeQuantize"], "scheme": "NNCF / FakeQuantize"}
        if ops.get("FakeQuantize")
        else {}
    )
    return {
        "format": "openvino-ir",
        "detail": xml.name,
        "inputs": [io(p) for p in model.inputs],
        "outputs": [io(p) for p in model.outputs],
        "op_types": dict(ops.most_common()),
        "precision_mix": dict(mix.most_common()),
        "quantization": quant,
        "metadata": meta,
    }


def _coreml(path: Path) -> dict:
    from collections import Counter

    from vopt.targets.coreml import import_coremltools

    ct = import_coremltools()
    from coremltools.proto import FeatureTypes_pb2 as ft

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    desc = spec.description
    names = {v: k.lower() for k, v in ft.ArrayFeatureType.ArrayDataType.items()}

    def io(f) -> dict:
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
                            kind = _mil_dtype(o.type)
                            if kind not in ("string", "bool", "scalar"):  # op parameters, not tensors
                                mix[kind] += 1
                    elif op.type.startswith("constexpr") and "quantized_data" in op.attributes:
                        # compressed weights: count the stored (int8/uint8) tensor, not the fp16 it expands to
                        mix[_mil_dtype(op.attributes["quantized_data"].type)] += 1
    quant = (
        {"constexpr ops": sum(v for k, v in ops.items() if k.startswith("constexpr"))}
        if any(k.startswith("constexpr") for k in ops)
        else {}
    )
    return {
        "format": "coreml-mlpackage",
        "detail": f"{spec.WhichOneof('Type')}, spec v{spec.specificationVersion}",
        "inputs": [io(f) for f in desc.input],
        "outputs": [io(f) for f in desc.output],
        "op_types": dict(ops.most_common()),
        "precision_mix": dict(mix.most_common()),
        "quantization": quant,
        "metadata": dict(desc.metadata.userDefined),
    }


def _engine(path: Path) -> dict:
    """Engines need TensorRT to deserialize; the name and the metadata file beside it tell the rest."""
    import json

    engine = path if path.suffix == ".engine" else sorted(path.glob("*.engine"))[0]
    meta_file = engine.parent / "vopt_metadata.json"
    return {
        "format": "tensorrt-engine",
        "detail": f"{engine.name} (TensorRT version and GPU arch in the name)",
        "inputs": [],
        "outputs": [],
        "op_types": {},
        "precision_mix": {},
        "quantization": {},
        "metadata": json.loads(meta_file.read_text()) if meta_file.is_file() else {},
    }


def _dtype_name(name: str) -> str:
    return {
        "float32": "fp32",
        "float16": "fp16",
        "f32": "fp32",
        "f16": "fp16",
        "bfloat16": "bf16",
        "bf16": "bf16",
        "i8": "int8",
        "u8": "uint8",
        "i32": "int32",
        "i64": "int64",
        "u16": "uint16",
        "i16": "int16",
        "boolean": "bool",
    }.get(name, name)


def _mil_dtype(value_type) -> str:
    from coremltools.proto import MIL_pb2

    t = value_type.tensorType if value_type.WhichOneof("type") == "tensorType" else None
    if t is None:
        return "scalar"
    return _dtype_name(
        MIL_pb2.DataType.Name(t.dataType).lower().replace("float", "fp").replace("fp32", "fp32")
    )
