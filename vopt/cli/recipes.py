from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, out, print_json


@handles_errors
def command(
    root: Path = typer.Argument(Path("recipes"), help="Folder to list."),
    json_out: bool = typer.Option(False, "--json", help="Print as JSON."),
) -> None:
    from vopt.errors import RecipeError
    from vopt.recipe.resolve import load_recipe

    rows = []
    for path in sorted(root.rglob("*.yaml")):
        rel = path.relative_to(root)
        if rel.parts[0] in ("families", "targets"):
            continue  # fragments meant for `extends:`
        try:
            r = load_recipe(path).recipe
            rows.append({"file": str(path), "name": r.name, "family": r.model.family or "auto", "target": r.compile.target,
                         "precision": _precision(r), "ok": True})
        except RecipeError as exc:
            rows.append({"file": str(path), "name": "-", "family": "-", "target": "-", "precision": "-", "ok": False, "error": exc.message})
    if json_out:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("recipe", "name", "family", "target", "precision", box=None, header_style="bold")
    for row in rows:
        precision = row["precision"]
        precision = "+".join(precision) if isinstance(precision, list) else str(precision)
        table.add_row(row["file"], row["name"], str(row["family"]), row["target"], precision if row["ok"] else "[red]invalid[/]")
    out.print(table)


def _precision(recipe) -> str:
    from vopt.registry import get_target

    if recipe.quantize is not None:
        return recipe.quantize.precision
    value = get_target(recipe.compile.target).precision(recipe.compile)
    return "+".join(value) if isinstance(value, list) else str(value)
