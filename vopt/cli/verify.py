from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors, print_json

EP_CHOICES = ("webgpu", "wasm", "webnn")


@handles_errors
def command(
    artifact: Path = typer.Argument(
        ..., help="An .onnx artifact, or a build directory holding model.onnx.", show_default=False
    ),
    browser: bool = typer.Option(
        False, "--browser", help="Run it with onnxruntime-web in headless Chromium."
    ),
    ep: list[str] = typer.Option(
        ["webgpu", "wasm", "webnn"], "--ep", help="Execution providers to try (repeat the option)."
    ),
    reference: Path | None = typer.Option(
        None,
        "--reference",
        "-r",
        help="Reference: a recipe .yaml or build directory (PyTorch), or a .onnx (ONNX Runtime, Python). "
        "Default: the artifact's build directory when it has one, else ONNX Runtime (Python) on the artifact "
        "itself.",
    ),
    data: str | None = typer.Option(
        None, "--data", help="Image folder; the built-in real samples when omitted."
    ),
    samples: int = typer.Option(4, "--samples", min=1, help="Images to compare on."),
    seed: int = typer.Option(0, "--seed", help="Image sampling seed."),
    min_cosine: float | None = typer.Option(
        None, "--min-cosine", help="Cosine floor (default by precision: fp32 0.9999, fp16 0.999, int8 0.98)."
    ),
    max_abs_diff: float | None = typer.Option(
        None, "--max-abs-diff", help="Also fail above this max abs difference."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.errors import RecipeError
    from vopt.web.verify import raise_for, verify

    if not browser:
        raise RecipeError(
            "vopt verify needs a runtime: pass --browser (onnxruntime-web in headless Chromium)"
        )
    unknown = [e for e in ep if e not in EP_CHOICES]
    if unknown:
        raise RecipeError(f"--ep {', '.join(unknown)}: unknown; choose from {', '.join(EP_CHOICES)}")
    from vopt.cli.output import captured

    with captured(f"verify {artifact}", debug=debug) as library_output:
        report = verify(
            artifact,
            reference=reference,
            eps=list(dict.fromkeys(ep)),
            data=data,
            samples=samples,
            seed=seed,
            min_cosine=min_cosine,
            max_abs_diff=max_abs_diff,
        )
    report["library_output"] = library_output
    if json_out:
        print_json(report)
    _table(report)
    raise_for(report)


def _table(report: dict) -> None:
    err.print(
        f"[bold]vopt verify[/] {report['artifact']}  ({report['precision']}, {report['samples']} images)",
        highlight=False,
    )
    err.print(f"  reference: {report['reference']}", markup=False, highlight=False)
    for ep, e in report["eps"].items():
        if e["status"] == "ok":
            t = e["timing"]
            mark = "[green]pass[/]" if e["passed"] else "[red]FAIL[/]"
            off = e["runtime_info"]["placement"]["nodes_off_ep"] if ep != "wasm" else 0
            mark += f" ({off} nodes placed on CPU by ORT)" if off else ""
            err.print(
                f"  {ep:<7} {mark}  cosine {e['cosine']:.6f}  max abs diff {e['max_abs_diff']:.3g}  "
                f"first run {t['first_run_ms']:.1f} ms, median {t['median_run_ms']:.1f} ms",
                highlight=False,
                soft_wrap=True,
            )
        else:
            err.print(
                f"  {ep:<7} [yellow]{e['status']}[/]  {e.get('reason', '')}", highlight=False, soft_wrap=True
            )
    if report.get("note"):
        err.print(f"  note: {report['note']}", markup=False, highlight=False)
