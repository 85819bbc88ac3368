from __future__ import annotations

import contextlib
from pathlib import Path

import typer
from rich.markup import escape

from vopt.cli.output import RichReporter, err, handles_errors, print_json


@handles_errors
def command(
    recipes: list[Path] = typer.Argument(..., help="Recipe YAML file(s).", show_default=False),
    out: Path = typer.Option(
        Path("build"), "--out", "-o", help="Output root; each build goes to OUT/<name>/."
    ),
    set_: list[str] = typer.Option([], "--set", help="Override a recipe value: key.path=value (YAML-typed)."),
    no_cache: bool = typer.Option(
        False, "--no-cache", help="Re-run every step (results still refresh the cache)."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache directory (default: $VOPT_CACHE_DIR or ~/.cache/vopt)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the manifest(s) as JSON on stdout."),
    write_back: bool = typer.Option(
        False, "--write-back", help="Write the quantization fallback's exclusions into the recipe."
    ),
    timings: bool = typer.Option(
        False, "--timings", help="Print where the time went: per step, and inside each step."
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
    jobs: int = typer.Option(
        1, "--jobs", "-j", min=1, help="Build up to N recipes at once, one process each."
    ),
    profile: str | None = typer.Option(
        None, "--profile", help="smoke: the family's tiny config, random weights, few images."
    ),
    keep_going: bool = typer.Option(
        False,
        "--keep-going",
        help="When the quantize check fails a gate, run the later steps anyway (the report gets them); "
        "the build still exits 3.",
    ),
) -> None:
    from vopt.cli.output import stdout_for_json_only
    from vopt.cli.parallel import die_with_parent
    from vopt.core.interrupt import handle_signals

    # SIGINT / SIGTERM: exit 130 / 143, nothing partial left
    with handle_signals(), stdout_for_json_only() if json_out else contextlib.nullcontext():
        die_with_parent()  # a child of `vopt build -j`: SIGTERM when the parent dies, even by SIGKILL
        _build_all(
            recipes,
            out,
            set_,
            no_cache,
            cache_dir,
            json_out,
            write_back,
            timings,
            debug,
            jobs,
            profile,
            keep_going,
        )


def _build_all(
    recipes,
    out,
    set_,
    no_cache,
    cache_dir,
    json_out,
    write_back,
    timings,
    debug,
    jobs,
    profile,
    keep_going=False,
) -> None:
    from vopt.cli.timings import TimingReporter
    from vopt.core.cache import Cache
    from vopt.errors import GateFailed
    from vopt.pipeline.runner import build
    from vopt.recipe.resolve import load_recipe, located

    sets_of = {r: _profile_sets(profile, r) + list(set_) for r in recipes}
    loaded_all = [
        load_recipe(r, sets_of[r]) for r in recipes
    ]  # all recipes are checked before any work starts
    from vopt.pipeline.plan import make_plan
    from vopt.pipeline.preflight import check_inputs, check_out_dir

    check_out_dir(out, [loaded.recipe.name for loaded in loaded_all])
    for loaded in loaded_all:
        check_inputs(loaded)  # data folders first: their errors name the recipe line
        with located(loaded.raw):
            make_plan(loaded.recipe)
    if jobs > 1 and len(recipes) > 1:
        _build_parallel(
            loaded_all, recipes, sets_of, out, no_cache, cache_dir, json_out, debug, jobs, keep_going
        )
        return
    reporter = TimingReporter(debug=debug) if timings else RichReporter(debug=debug)
    cache = Cache(cache_dir)
    manifests = []
    failed: GateFailed | None = None
    for loaded in loaded_all:
        err.print(f"[bold]vopt build[/] {loaded.recipe.name}  ({escape(str(loaded.path))})", highlight=False)
        try:
            result = build(
                loaded,
                out,
                cache=cache,
                reporter=reporter,
                use_cache=not no_cache,
                debug=debug,
                keep_going=keep_going,
            )
        except GateFailed as exc:
            failed = exc
            manifests.append(_manifest_of(out / loaded.recipe.name))
            err.print(
                f"[red]gate failed[/] build dir: {escape(str(out / loaded.recipe.name))}", highlight=False
            )
            continue
        manifests.append(result.manifest)
        if write_back:
            from vopt.recipe.write_back import write_back as do_write_back

            changed = do_write_back(loaded, result.manifest)
            if changed:
                err.print(
                    f"  wrote {escape(str(changed))} back into {escape(str(loaded.path))}", highlight=False
                )
        _summary(result)
        if timings:
            for line in reporter.lines():
                err.print(escape(line), highlight=False, soft_wrap=True)
            reporter.steps.clear()
    if json_out:
        print_json(manifests[0] if len(manifests) == 1 else manifests)
    if failed is not None:
        raise failed


def _profile_sets(profile: str | None, recipe: Path) -> list[str]:
    if profile is None:
        return []
    from vopt.cli.profiles import profile_sets

    return profile_sets(profile, recipe)


def _build_parallel(
    loaded_all, recipes, sets_of, out, no_cache, cache_dir, json_out, debug, jobs, keep_going=False
) -> None:
    """One child process per recipe (vopt.cli.parallel); exit code: the first failing recipe's, in the order
    given."""
    from vopt.cli.parallel import child_command, run_parallel

    names = [lr.recipe.name for lr in loaded_all]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        from vopt.errors import RecipeError

        raise RecipeError(
            f"-j: recipes share a build name ({', '.join(dupes)}): they would write the same {out}/<name>/"
        )
    err.print(f"[bold]vopt build[/] {len(recipes)} recipes, {jobs} at a time", highlight=False)

    def done(result) -> None:
        state = "[green]ok[/]" if result.code == 0 else f"[red]exit {result.code}[/]"
        err.print(
            f"[bold]--- {escape(str(result.recipe))}[/] {state} ({result.seconds:.1f}s)", highlight=False
        )
        err.print(escape(result.output.rstrip()), highlight=False, soft_wrap=True)

    def waiting(running) -> None:
        from vopt.core.progress import duration

        busy = ", ".join(f"{r} ({duration(s)})" for r, s in running)
        err.print(f"  still building: {escape(busy)}", highlight=False, soft_wrap=True)

    flag = ["--keep-going"] if keep_going else []
    commands = [(r, [*child_command(r, out, sets_of[r], no_cache, cache_dir, debug), *flag]) for r in recipes]
    results = run_parallel(commands, jobs, done, waiting, RichReporter().progress_interval)
    failed = [r for r in results if r.code != 0]
    err.print(
        f"{len(results) - len(failed)}/{len(results)} built"
        + (f"; failed: {', '.join(str(r.recipe) for r in failed)}" if failed else ""),
        highlight=False,
        soft_wrap=True,
    )
    if json_out:
        print_json([_manifest_of(out / n) for n in names])
    if failed:
        raise typer.Exit(failed[0].code)


def _manifest_of(build_dir: Path) -> dict:
    from vopt.core.results import read_manifest

    try:
        return read_manifest(build_dir)
    except Exception:  # noqa: BLE001 - the gate error itself is what matters
        return {}


def _summary(result) -> None:
    m = result.manifest
    cached = sum(1 for s in m["steps"] if s["cached"])
    art = m.get("artifact") or {}
    parts = art.get("components") or {}
    shipped = f"/ ({len(parts)} components: {', '.join(parts)})" if parts else f"/{art.get('file', '')}"
    err.print(
        f"[green]built[/] {escape(str(result.out_dir))}{escape(shipped)}  "
        f"({art.get('size_bytes', 0) / 1e6:.2f} MB, {cached}/{len(m['steps'])} steps cached, "
        f"{result.vopt_seconds:.2f}s)",
        highlight=False,
        soft_wrap=True,
    )
    # Warnings of cached steps were printed when those steps ran; say them again, or a cached build hides
    # them.
    again = [
        f"{s['stage']}: {w}"
        for s in m["steps"]
        if s["cached"]
        for w in s["report"].get("warnings", [])
        if "weights: random" not in w
    ]  # the RANDOM note below says it once
    for w in [w for w in m.get("warnings", []) if "RANDOM" in w] + again:
        err.print(f"[yellow]note:[/] {escape(w)}", highlight=False, soft_wrap=True)
    for line in headline_lines(m):
        err.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
    where = f"  manifest: {result.out_dir / 'manifest.json'}   report: {result.out_dir / 'report.html'}"
    err.print(escape(where), highlight=False, soft_wrap=True)


def headline_lines(m: dict) -> list[str]:
    """What a user wants from a build, for any build that measured it: how far the artifact's answers are
    from the original model's (with the 95% interval of a rate), and what quantizing bought in speed over
    the float model on the same runtime (a figure only where its interval supports one)."""
    from vopt.report import data as d

    lines = []
    head = d.agreement(m)
    text = d.agreement_text(m, "images held out from calibration" if d.validation_held_out(m) else "images")
    if head and text:
        against = "the exported model" if (m.get("validation") or {}).get("reference") == "exported" else None
        against = against or "the original model"
        lines.append(f"{d.metric_name(head[0])} with {against}: {text}")
    speed = d.quantized_speedup(m)
    shown = d.quantized_speedup_text(m)
    if speed and shown:
        lines.append(
            f"speed-up of {d.precision(m)} over float on {speed.get('runtime', '?')}: {shown[0]}"
            + (", both timed interleaved" if shown[1] else "")
        )
    return lines
