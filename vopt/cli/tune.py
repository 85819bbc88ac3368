from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import RichReporter, err, handles_errors, out, print_json


@handles_errors
def command(
    recipe: Path = typer.Argument(..., help="Recipe YAML file.", show_default=False),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value."),
    out_root: Path = typer.Option(Path("build"), "--out", "-o", help="Candidates go to OUT/<name>.tune/NN/."),
    budget: float = typer.Option(
        900.0,
        "--budget",
        min=1,
        max=86400,
        help="Seconds of building before the remaining candidates are skipped.",
    ),
    rounds: int = typer.Option(7, "--rounds", min=1, max=100, help="Interleaved timing rounds."),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="Cache directory."),
    write_back: bool = typer.Option(
        False, "--write-back", help="Write <recipe>.tuned.yaml (extends the recipe with the winning keys)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the tuning table as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.core.cache import Cache
    from vopt.recipe.resolve import load_recipe
    from vopt.tune.search import run_tuning, write_tuned_recipe

    name = load_recipe(recipe, set_).recipe.name
    result = run_tuning(
        recipe,
        set_,
        out_root / f"{name}.tune",
        cache=Cache(cache_dir),
        reporter=RichReporter(debug=debug),
        budget_s=budget,
        rounds=rounds,
    )
    if write_back and result["best"]:
        written = write_tuned_recipe(recipe, result["best"])
        result["written"] = str(written) if written else None
    if json_out:
        print_json(result)
    else:
        _show(result)
    if not result["best"]:
        from vopt.errors import GateFailed

        raise GateFailed(
            "no candidate passed the recipe's gates",
            lines=[f"{c['name']}: {c['status']}: {c.get('reason', '')}" for c in result["candidates"]],
        )


def _show(r: dict) -> None:
    from rich.markup import escape

    from vopt.cli.output import print_table

    rows = []
    for c in r["candidates"]:
        fid = ", ".join(
            f"{k} {v}"
            for k, v in c.items()
            if k in ("top1_agreement", "centered_cosine", "box_agreement", "gates")
        )
        reason = " ".join(str(c.get("reason", "")).split())  # one line, whole: it names what failed
        rows.append(
            [
                escape(c["name"]),
                c["status"] if c["status"] != "built" else "passed",
                str(c.get("img_s", "-")),
                str(c.get("vs_as_written", "-")),
                escape("; ".join(x for x in (fid, reason) if x)),
                str(c["build_s"]),
            ]
        )
    print_table(
        ["candidate", "status", "img/s", "vs as written", "fidelity / reason", "build s"],
        rows,
        right=(2, 3, 5),
    )
    best = r["best"]
    if best:
        sets = " ".join(f"--set {k}={v}" for k, v in best["overrides"].items()) or "(the recipe as written)"
        out.print(
            f"fastest passing: [bold]{escape(best['name'])}[/] at {best['img_s']} img/s: {escape(sets)}",
            highlight=False,
        )
        out.print(f"  build dir: {escape(str(best['build_dir']))}", highlight=False, soft_wrap=True)
    if r.get("written"):
        err.print(f"wrote {r['written']}", highlight=False)
    err.print(f"timing: {r['timing']}; {r['seconds']} s in all", highlight=False)
