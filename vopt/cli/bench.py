from __future__ import annotations

from pathlib import Path

import typer

from vopt.cli.output import RichReporter, err, handles_errors, out, print_json


@handles_errors
def command(
    path: Path = typer.Argument(
        ..., help="A build directory (manifest.json) or an .onnx file (run on ORT CPU).", show_default=False
    ),
    batch_sizes: str = typer.Option(
        "1",
        "--batch-sizes",
        "-b",
        help="Comma-separated, e.g. 1,4,8 (static-batch artifacts run only their own).",
    ),
    warmup: int = typer.Option(3, "--warmup", min=0, help="Warm-up calls per batch size."),
    iterations: int = typer.Option(20, "--iterations", "-n", min=1, help="Timed calls per batch size."),
    seconds: float | None = typer.Option(
        None, "--seconds", help="Time bound per batch size (overrides --iterations)."
    ),
    threads: str | None = typer.Option(
        None,
        "--threads",
        "-t",
        help="Intra-op threads, or a comma-separated sweep, e.g. 1,2 (runtime default when omitted).",
    ),
    baseline: bool = typer.Option(
        True, "--baseline/--no-baseline", help="Time PyTorch eager interleaved, for the speedup."
    ),
    cache_dir: Path | None = typer.Option(
        None, "--cache-dir", help="Cache holding the build's PyTorch model (for the speedup)."
    ),
    json_out: bool = typer.Option(False, "--json", help="Print the results as JSON on stdout."),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks."),
) -> None:
    from vopt.bench.harness import BenchSettings, run_benchmark
    from vopt.bench.source import resolve_source
    from vopt.bench.targets import runner_factory
    from vopt.datasets.images import load_batch

    sizes = _ints(batch_sizes, "--batch-sizes")
    thread_counts = _ints(threads, "--threads") if threads else None
    src = resolve_source(path, cache_dir)
    ok, why = src.target.available()
    if not ok:
        from vopt.errors import BackendUnavailable

        raise BackendUnavailable(f"target '{src.target.name}': {why}")
    make, threads_in_effect, note = runner_factory(src.target, src.artifact, src.compile_cfg, thread_counts)
    notes = [*src.notes, *([note] if note else [])]
    settings = BenchSettings(sizes, warmup, iterations, seconds, threads_in_effect, baseline)
    images = load_batch(None, src.artifact.preprocess, min(8, max(sizes)))
    err.print(f"[bold]vopt bench[/] {src.describe}", highlight=False)
    result = run_benchmark(
        make,
        src.artifact.io.inputs[0].name,
        src.artifact.io.inputs[0].shape[0],
        images,
        settings,
        load_reference=src.load_reference if baseline else None,
        artifact_bytes=src.artifact_bytes(),
        reporter=RichReporter(debug=debug),
    )
    notes += result.pop("warnings", [])
    result.update(artifact=str(src.artifact.path), target=src.target.name, notes=notes)
    if json_out:
        print_json(result)
        return
    _show(result)


def _ints(text: str, option: str) -> list[int]:
    from vopt.errors import RecipeError

    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise RecipeError(f"{option} {text}: use comma-separated integers, e.g. 1,4,8") from None
    if not values or min(values) < 1:
        raise RecipeError(f"{option} {text}: values must be >= 1")
    return values


def _show(r: dict) -> None:
    from vopt.cli.output import print_table
    from vopt.report.data import fmt_bytes

    print_table(
        ["threads", "batch", "first ms", "p50 ms", "p90 ms", "p99 ms", "img/s", "runs"],
        [
            [
                str(row["threads"] or "default"),
                str(row["batch"]),
                f"{row['first_ms']:.3f}",
                f"{row['p50_ms']:.3f}",
                f"{row['p90_ms']:.3f}",
                f"{row['p99_ms']:.3f}",
                f"{row['throughput_ips']:.1f}",
                str(row["iterations"]),
            ]
            for row in r["results"]
        ],
        right=(0, 1, 2, 3, 4, 5, 6, 7),
    )
    out.print(
        f"runtime {r['runtime']}, cold start {r['cold_ms']:.2f} ms "
        f"(+ {r['load_ms']:.1f} ms session load), peak RSS {r['peak_rss_mb']:.0f} MB, artifact "
        f"{fmt_bytes(r['artifact_bytes'])}",
        highlight=False,
    )
    from vopt.bench.harness import speedup_text

    for base in r.get("baselines") or ([r["baseline"]] if r.get("baseline") else []):
        shown, supported = speedup_text(base)
        out.print(
            f"PyTorch eager {base['pytorch_p50_ms']:.3f} ms vs {base['artifact_p50_ms']:.3f} ms at batch "
            f"{base['batch']}, "
            f"{base['threads'] or 'default'} threads (interleaved, {base.get('rounds', '?')} rounds): "
            + (f"[bold]{shown}[/]" if supported else f"speedup {shown}"),
            highlight=False,
        )
    for n in r.get("notes", []):
        err.print(f"[yellow]note:[/] {n}", highlight=False)
