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
        parts = {
            n: p for n, p in (info.get("components") or {}).items() if p["format"] in checker.input_formats
        }
        if parts:  # an artifact of components: each component's file, and the set ready when all are
            for part in parts.values():
                part[f"{target}_readiness"] = checker.check_onnx(str(Path(info["path"]) / part["path"]))
            each = [p[f"{target}_readiness"] for p in parts.values()]
            info[f"{target}_readiness"] = {
                "ready": all(r["ready"] for r in each),
                "errors": sum(r["errors"] for r in each),
                "warnings": sum(r["warnings"] for r in each),
                "opset": max(r["opset"] for r in each),
                "findings": [
                    {**f, "check": f"{n}: {f['check']}"}
                    for n, r in zip(parts, each, strict=True)
                    for f in r["findings"]
                ],
                "components": list(parts),
            }
        elif info["format"] not in checker.input_formats:
            raise RecipeError(
                f"--check {target} needs what the target compiles ({', '.join(checker.input_formats)}), "
                f"got {info['format']}"
            )
        else:
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
    """What the artifact is, as its format plugin reads it (vopt.formats); a build directory shows its
    artifact, and an artifact with components lists each."""
    from vopt.errors import RecipeError
    from vopt.registry import detect_format

    path = Path(path)
    if path.is_dir() and (path / "manifest.json").is_file():
        from vopt.core.results import read_manifest

        entry = read_manifest(path).get("artifact") or {}
        if not entry.get("file"):
            raise RecipeError(f"{path}: build directory without an artifact")
        path = path / entry["file"]
    detected = detect_format(path)
    if detected is None:
        raise RecipeError(
            f"{path}: unknown artifact type (expected .onnx, OpenVINO .xml/dir, .mlpackage, .engine, "
            ".tflite, or a build directory)"
        )
    fmt, own = detected
    info = fmt.inspect(own)
    info["path"] = str(own)
    # What the artifact is, as vopt labelled it when it was built (the manifest and report say the same).
    info["precision"] = info["metadata"].get("vopt.precision")
    info["size_bytes"] = fmt.size(own)
    return info
