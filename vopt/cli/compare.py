from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, print_json


@handles_errors
def command(
    build_dirs: list[Path] = typer.Argument(
        ..., help="Build directories (each holds a manifest.json).", show_default=False
    ),
    format_: str = typer.Option("table", "--format", "-f", help="table | markdown | json"),
    plot: Path | None = typer.Option(
        None, "--plot", help="Also write a size-vs-agreement PNG with one point per build."
    ),
) -> None:
    from vopt.core.results import read_manifest
    from vopt.errors import RecipeError
    from vopt.report.compare import COLUMNS, compare_markdown, compare_rows, display_cells

    if format_ not in ("table", "markdown", "json"):
        raise RecipeError(f"--format {format_}: use table, markdown or json")
    rows = compare_rows([(str(p), read_manifest(p)) for p in build_dirs])
    if plot is not None:
        _plot(rows, plot)
    if format_ == "json":
        print_json(rows)
    elif format_ == "markdown":
        typer.echo(compare_markdown(rows), nl=False)
    else:
        from rich.markup import escape

        from vopt.cli.output import print_table

        print_table(list(COLUMNS), [[escape(str(c)) for c in display_cells(r)] for r in rows])


def _plot(rows: list[dict], path: Path) -> None:
    from vopt.errors import RecipeError
    from vopt.report.plots import size_vs_agreement

    shown = [r for r in rows if r["size_bytes"] and r["agreement"] is not None]
    # Each point says which images it was measured on; the title says whether they are the same for all.
    points = [
        (
            f"{r['build']} ({r['precision']}; {r['validation_images'] or '?'} images)",
            float(r["size_bytes"]),
            r["agreement"],
        )
        for r in shown
    ]
    metrics = sorted({r["agreement_metric"] for r in rows if r["agreement_metric"]})
    if not points:
        raise RecipeError("--plot: no build has both a size and a validation agreement")
    sets = {r["validation_set"] for r in shown}
    same = len(sets) == 1 and None not in sets
    title = "size vs agreement, " + (
        "every build on the same validation images" if same else "each build on its own validation images"
    )
    png = size_vs_agreement(points, " / ".join(metrics), title)
    path.write_bytes(png or b"")
