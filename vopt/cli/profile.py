from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors, out, print_json


@handles_errors
def command(
    path: Path = typer.Argument(
        ..., help="A build directory, an .onnx file or an OpenVINO .xml.", show_default=False
    ),
    top: int = typer.Option(15, "--top", min=1, help="Slowest nodes to list."),
    runs: int = typer.Option(
        10, "--runs", "-n", min=1, max=10000, help="Profiled inferences (after 2 warm-up)."
    ),
    threads: int | None = typer.Option(None, "--threads", "-t", min=1, max=1024, help="Intra-op threads."),
    batch: int = typer.Option(1, "--batch", "-b", min=1, max=4096, help="Batch size (a static batch wins)."),
    reference: bool = typer.Option(False, "--reference", help="Profile the build's PyTorch model too."),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache holding the build's PyTorch model."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the profile as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.cli.output import captured
    from vopt.profiling.run import profile_path

    with captured(f"profile {path}", debug=debug) as library_output:
        result = profile_path(
            path, runs=runs, threads=threads, batch=batch, reference=reference, cache_dir=cache_dir
        )
    data = {**result, "profile": result["profile"].to_dict(top), "library_output": library_output}
    if "reference" in result:
        data["reference"] = result["reference"].to_dict(top)
    if json_out:
        print_json(data)
        return
    _show(data["profile"], f"{path} (batch {data['batch']})")
    if "reference" in data:
        _show(data["reference"], "reference")
    for note in data["notes"]:
        err.print(f"[yellow]note:[/] {note}", highlight=False)


def _show(p: dict, title: str) -> None:
    from rich.markup import escape

    from vopt.cli.output import print_table

    out.print(
        f"[bold]{escape(title)}[/] on {p['runtime']}: {p['total_ms']:.3f} ms per inference "
        f"({p['op_ms']:.3f} ms in {p['ops']} ops, mean of {p['runs']} runs)",
        highlight=False,
    )
    print_table(
        ["op type", "ms", "%", "nodes", "precision"],
        [
            [
                escape(row["op_type"]),
                f"{row['ms']:.3f}",
                f"{row['percent']:.1f}",
                str(row["count"]),
                escape(",".join(row["precisions"])),
            ]
            for row in p["by_op_type"][:12]
        ],
        right=(1, 2, 3),
    )
    mix = ", ".join(f"{k} {v['percent']:.1f}% ({v['ops']} ops)" for k, v in p["precision_mix"].items())
    out.print(f"precision mix by time: {mix}", highlight=False)
    out.print(f"devices: {', '.join(f'{k} {v}' for k, v in p['devices'].items())}", highlight=False)
    print_table(
        ["node", "op", "ms", "precision", "kernel"],
        [
            [
                escape(op["node"]),
                escape(op["op_type"]),
                f"{op['ms']:.3f}",
                escape(op["precision"]),
                escape(op["kernel"] or op["device"]),
            ]
            for op in p["top"]
        ],
        right=(2,),
    )
    for note in p["notes"]:
        err.print(f"[yellow]note:[/] {note}", highlight=False)
