from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors


@handles_errors
def command(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML file(s).", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.errors import RecipeError
    from vopt.recipe.resolve import load_recipe

    problems: list[str] = []
    for path in recipes:
        try:
            loaded = load_recipe(path, set_)
            err.print(f"[green]ok[/] {path} ({loaded.recipe.name} -> {loaded.recipe.compile.target})", highlight=False)
        except RecipeError as exc:
            problems.append(exc.message)
            err.print(f"[red]error[/] {path}: {exc.message}", highlight=False, soft_wrap=True)
            for line in exc.lines:
                err.print(f"  {line}", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
