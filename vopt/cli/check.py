from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import err, handles_errors, plain


@handles_errors
def command(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML file(s).", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from rich.markup import escape

    from vopt.cli.fragments import is_fragment, load_fragment
    from vopt.errors import RecipeError
    from vopt.pipeline.plan import make_plan
    from vopt.pipeline.preflight import check_inputs
    from vopt.recipe.resolve import load_recipe, located

    problems: list[str] = []
    for path in recipes:
        try:
            fragment = is_fragment(path)  # families/*.yaml, targets/*.yaml: checked composed with a stub
            loaded = load_fragment(path, set_) if fragment else load_recipe(path, set_)
            check_inputs(
                loaded
            )  # data folders, gate metrics (with the recipe line), before the plan reads them
            with located(loaded.raw):  # stage-level settings (a scheme the target cannot take) fail here too
                make_plan(loaded.recipe)
            what = "fragment" if fragment else loaded.recipe.name
            err.print(
                f"[green]ok[/] {escape(str(path))} ({what} -> {loaded.recipe.compile.target})",
                highlight=False,
            )
        except RecipeError as exc:
            problems.append(exc.message)
            where = "" if str(path) in exc.message else f"{escape(str(path))}: "
            err.print(f"[red]error[/] {where}{escape(plain(exc.message))}", highlight=False, soft_wrap=True)
            for line in exc.lines:
                err.print(f"  {plain(line)}", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
