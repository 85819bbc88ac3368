from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, print_json


@handles_errors
def command(
    root: Path = typer.Argument(Path("recipes"), help="Folder to list."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
    buildable: bool = typer.Option(
        False, "--buildable", help="Only print the files of recipes that build and run here."
    ),
) -> None:
    from vopt.cli import library

    rows = library.scan(root)
    if buildable:
        for row in library.buildable(rows):
            typer.echo(row.file)
        return
    if json_out:
        print_json([r.as_dict() for r in rows])
        return
    from rich.markup import escape

    from vopt.cli.output import print_table

    cells = []
    for row in rows:
        if not row.ok:
            cells.append([escape(row.file), "-", "-", "-", "[red]invalid[/]", "-"])
            continue
        runtime = row.runtime + (" (limited)" if row.limited else "")
        cells.append(
            [escape(v) for v in (row.name, row.family, row.platform, row.target, row.precision, runtime)]
        )
    print_table(["recipe", "family", "platform", "target", "precision", "runtime here"], cells)
