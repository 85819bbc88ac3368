from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import handles_errors, out, print_json


@handles_errors
def command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file.", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache directory."),
    json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    import yaml

    from vopt.core.cache import Cache
    from vopt.pipeline.plan import dry_run, make_plan
    from vopt.pipeline.preflight import check_inputs
    from vopt.recipe.resolve import load_recipe, located

    loaded = load_recipe(recipe, set_)
    check_inputs(loaded)
    with located(loaded.raw):
        steps, target = make_plan(loaded.recipe)
    planned = dry_run(steps, target, Cache(cache_dir))
    ok, why = target.available()
    from vopt.registry import get_source

    source = get_source(loaded.recipe.model.source)
    notes = source.plan_notes(loaded.recipe)
    if json_out:
        print_json(
            {
                "recipe": loaded.resolved(),
                "target": {"name": target.name, "available": ok, "reason": why},
                "steps": [
                    {"stage": p.name, "cached": p.cached, "key": p.key, "config": p.config} for p in planned
                ],
                "notes": notes,
            }
        )
        return
    out.print("# resolved recipe", highlight=False)
    out.print(yaml.safe_dump(loaded.resolved(), sort_keys=False).rstrip(), markup=False, highlight=False)
    out.print(f"\n# target: {target.name} ({'available' if ok else 'UNAVAILABLE: ' + why})", markup=False)
    out.print("# steps", highlight=False)
    for i, p in enumerate(planned, 1):
        state = "hit " if p.cached else ("miss" if p.key else "miss (input not built yet)")
        out.print(
            f"{i}. {p.name:<10} {state}" + (f"  {p.key[:12]}" if p.key else ""), markup=False, highlight=False
        )
    if notes:  # what the source knows of the model before it is built (a YOLO head: NMS or none needed)
        out.print("# notes", highlight=False)
        for note in notes:
            out.print(f"- {note}", markup=False, highlight=False)
