from __future__ import annotations

import json
from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors


@handles_errors
def command(
    output: Path | None = typer.Option(None, "--output", "-o", help="Write to a file instead of stdout."),
) -> None:
    from vopt.recipe.schema import recipe_schema

    text = json.dumps(recipe_schema(), indent=2) + "\n"
    if output:
        output.write_text(text)
        err.print(f"wrote {output}", highlight=False)
    else:
        typer.echo(text, nl=False)
