from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, out, print_json


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
    for line in legend(rows):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


def legend(rows) -> list[str]:
    """What the runtime column's words mean, with the stand-in each `proxy` target runs on here."""
    proxies = {r.target: r.reason for r in rows if r.ok and r.runtime == "proxy"}
    named = sorted({f"{r.platform} -> {r.target}" for r in rows if r.ok and r.platform != r.target})
    lines = [
        "platform: the platform fragment a recipe extends (recipes/targets/); target: the compile target it "
        "builds for" + (f" ({', '.join(named)})" if named else ""),
        "runtime here: 'runs here' = the artifact runs on its target's own runtime and device on this "
        "machine;",
        "  'proxy' = it runs here on a stand-in for the device, so its outputs are checked but its speed "
        "says nothing about the device:",
    ]
    lines += [f"    {target}: {why}" for target, why in sorted(proxies.items())]
    lines += [
        "  'builds only' = converted and checked, not run (the device is not here);",
        "  'unavailable' = the target cannot build here (vopt doctor says what to install).",
    ]
    return lines
