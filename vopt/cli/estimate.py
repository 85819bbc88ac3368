from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors, out, print_json


@handles_errors
def command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file.", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value."),
    batch_sizes: str = typer.Option(
        "",
        "--batch-sizes",
        "-b",
        help="Comma-separated; the recipe's benchmark batch sizes (and 1, 8, 32, 64) when omitted.",
    ),
    memory: str | None = typer.Option(
        None, "--memory", help="A budget such as 4GB: suggest the largest batch."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the estimate as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.cli.bench import _ints
    from vopt.estimate import parse_bytes
    from vopt.recipe.resolve import load_recipe

    loaded = load_recipe(recipe, set_)
    budget = parse_bytes(memory) if memory else None
    r = loaded.recipe
    sizes = (
        _ints(batch_sizes, "--batch-sizes")
        if batch_sizes
        else sorted({1, 8, 32, 64, *(r.benchmark.batch_sizes if r.benchmark else [])})
    )
    est = _estimate(r)
    rows = [est.at_batch(b) for b in sizes]
    suggested = est.largest_batch(budget) if budget else None
    result = {
        "recipe": r.name,
        "precision": est.precision,
        "params": est.params,
        "layers": est.layers,
        "per_image_activation_bytes": est.activation_peak_bytes,
        "rows": rows,
        "notes": est.notes,
        "method": "parameters at the artifact's weight precision + batch x the largest live set of one "
        "layer (its inputs + output), from one batch-1 forward pass",
    }
    if budget:
        result.update(budget_bytes=budget, suggested_batch=suggested)
    if json_out:
        print_json(result)
        return
    _show(result)


def _estimate(recipe):
    """The model as the load step builds it (or the ONNX file); nothing is cached or written."""
    from vopt.estimate import estimate_onnx, estimate_torch
    from vopt.registry import get_source

    spec = recipe.model
    precision = (
        (recipe.quantize.precision if recipe.quantize and recipe.quantize.precision else None)
        or recipe.compile.precision
        or "fp32"
    )
    loaded = get_source(spec.source).load(spec)
    shape = list(spec.input.shape)
    if loaded.onnx_path is not None:
        return estimate_onnx(loaded.onnx_path, shape, precision)
    from vopt.models.resolve import OutputWrapper

    return estimate_torch(OutputWrapper.wrap(loaded.module, loaded.family), shape, precision)


def _show(r: dict) -> None:
    from rich.markup import escape

    from vopt.cli.output import print_table
    from vopt.report.data import fmt_bytes

    out.print(
        f"[bold]{escape(r['recipe'])}[/]: {r['params'] / 1e6:.2f}M params at {r['precision']}, "
        f"{r['layers']} layers, "
        f"{fmt_bytes(r['per_image_activation_bytes'])} live activations per image",
        highlight=False,
    )
    print_table(
        ["batch", "parameters", "activations", "estimate", "upper bound (all outputs kept)"],
        [
            [
                str(row["batch"]),
                fmt_bytes(row["param_bytes"]),
                fmt_bytes(row["activation_bytes"]),
                fmt_bytes(row["total_bytes"]),
                fmt_bytes(row["upper_bound_bytes"]),
            ]
            for row in r["rows"]
        ],
        right=(0, 1, 2, 3, 4),
    )
    if "budget_bytes" in r:
        b = r["suggested_batch"]
        out.print(
            f"budget {fmt_bytes(r['budget_bytes'])}: "
            + (f"largest power-of-two batch that fits: [bold]{b}[/]" if b else "even batch 1 does not fit"),
            highlight=False,
        )
    err.print(f"method: {r['method']}; runtimes add their own workspace on top", highlight=False)
    for n in r["notes"]:
        err.print(f"[yellow]note:[/] {n}", highlight=False)
