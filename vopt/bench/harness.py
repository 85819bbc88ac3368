"""The benchmark: an artifact on its runtime, a batch sweep, and PyTorch eager interleaved for the speedup.
Shared by the `benchmark:` stage and `vopt bench`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vopt.bench.memory import current_rss_mb, peak_rss_mb, reset_peak
from vopt.bench.timing import time_calls
from vopt.core.progress import QuietReporter, Reporter
from vopt.runtimes.base import Runner


@dataclass
class BenchSettings:
    batch_sizes: list[int]
    warmup: int = 3
    iterations: int = 20
    seconds: float | None = None
    threads: list[int | None] = field(
        default_factory=lambda: [None]
    )  # the thread sweep; None: runtime default
    baseline: bool = True
    rounds: int = 5  # interleaved rounds for the speedup


def plan_batches(requested: list[int], batch_dim: int | str | None) -> tuple[list[int], list[int]]:
    """(batch sizes to run, those skipped). A static batch axis allows only its own size."""
    wanted = sorted(set(requested)) or [1]
    if isinstance(batch_dim, int):
        return [batch_dim], [b for b in wanted if b != batch_dim]
    return wanted, []


def tile(images: np.ndarray, batch: int) -> np.ndarray:
    reps = -(-batch // len(images))
    return np.ascontiguousarray(np.concatenate([images] * reps)[:batch])


def run_benchmark(
    make_runner: Callable[[int | None], Runner],
    input_name: str,
    batch_dim: int | str | None,
    images: np.ndarray,
    settings: BenchSettings,
    *,
    load_reference: Callable[[], Any] | None = None,
    artifact_bytes: int | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """`make_runner(threads)` opens the artifact on its runtime. `images` are real preprocessed samples
    (tiled up to each batch size). `load_reference` returns a torch module mapping the same input to
    outputs (loaded after the first sweep, so it is not in the peak RSS), or is None for no speedup."""
    reporter = reporter or QuietReporter()
    batches, skipped = plan_batches(settings.batch_sizes, batch_dim)
    thread_counts = list(dict.fromkeys(settings.threads)) or [None]
    baseline = load_reference is not None and settings.baseline
    warnings: list[str] = []
    if skipped:
        warnings.append(f"batch sizes {skipped} skipped: the artifact's batch axis is static ({batch_dim})")
    load = _load_average()
    if load is not None and load >= (os.cpu_count() or 1):
        warnings.append(
            f"the machine is busy (load average {load:.1f} on {os.cpu_count()} CPUs): timings are noisy"
            + (
                "; the speedup vs PyTorch eager is shown only where its 95% interval supports it"
                if baseline
                else ""
            )
        )
    reset_peak()
    rss_before = current_rss_mb()
    rows: list[dict[str, Any]] = []
    baselines: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    peak: float | None = None
    reference = None
    steps = len(thread_counts) * (len(batches) + (1 if baseline else 0))
    with reporter.bar("benchmark", steps) as advance:
        for threads in thread_counts:
            t0 = time.perf_counter()
            runner = make_runner(threads)
            load_ms = (time.perf_counter() - t0) * 1e3
            with runner:
                swept = _sweep(runner, input_name, images, batches, settings, threads, warnings, advance)
                if not first:
                    first = {
                        "runtime": runner.runtime,
                        "runtime_info": runner.info,
                        "load_ms": load_ms,
                        "cold_ms": swept[0]["first_ms"],
                    }
                rows += swept
                if baseline:
                    if reference is None:
                        peak = peak_rss_mb()  # before torch and the reference model join the process
                        reference = load_reference()
                    baselines.append(
                        _speedup(runner, input_name, images, swept[0]["batch"], reference, settings, threads)
                    )
                    advance(1)
    peak = peak if peak is not None else peak_rss_mb()
    measured = sorted({r["batch"] for r in rows})
    result: dict[str, Any] = {
        **{k: first[k] for k in ("runtime", "runtime_info")},
        "threads": thread_counts[0],
        "thread_counts": thread_counts,
        "cpus": os.cpu_count(),
        "load_average": load,
        "batch_sizes": measured,
        "skipped_batch_sizes": sorted(set(skipped) | (set(batches) - set(measured))),
        "load_ms": first["load_ms"],
        "cold_ms": first["cold_ms"],
        "results": rows,
        "peak_rss_mb": peak,
        "runtime_rss_mb": None if rss_before is None else max(0.0, peak - rss_before),
        "artifact_bytes": artifact_bytes,
        "settings": {
            "warmup": settings.warmup,
            "iterations": settings.iterations,
            "seconds": settings.seconds,
        },
    }
    if baselines:
        result["baseline"] = baselines[0]
        if len(baselines) > 1:
            result["baselines"] = baselines
    if warnings:
        result["warnings"] = warnings
    result["summary"] = _summary(result)
    return result


def _sweep(
    runner: Runner,
    input_name: str,
    images: np.ndarray,
    batches: list[int],
    settings: BenchSettings,
    threads: int | None,
    warnings: list[str],
    advance: Callable[[int], None],
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for b in batches:
        x = {input_name: tile(images, b)}
        try:
            stats = time_calls(
                lambda x=x: runner(x),
                warmup=settings.warmup,
                iterations=settings.iterations,
                seconds=settings.seconds,
            )
        except Exception as exc:  # noqa: BLE001 - one batch size the runtime refuses must not sink the sweep
            warnings.append(f"batch {b} failed on {runner.runtime}: {type(exc).__name__}: {str(exc)[:300]}")
            advance(1)
            continue
        # Throughput from the median call: a few slow calls from other processes should not drag it down.
        rows.append({"batch": b, "threads": threads, **stats, "throughput_ips": b * 1e3 / stats["p50_ms"]})
        advance(1)
    if not rows:
        raise RuntimeError(f"every batch size failed on {runner.runtime}: {'; '.join(warnings)}")
    return rows


# How long the artifact-vs-PyTorch comparison may time (seconds, after warm-up), per thread setting.
SPEEDUP_BUDGET_S = 8.0


def speedup_text(baseline: dict[str, Any]) -> tuple[str, bool]:
    """'2.52x (95% CI 2.31-2.75)' or 'inconclusive (...)', and whether the figure is supported."""
    from vopt.bench.timing import describe_ratio

    return describe_ratio(baseline.get("speedup"), baseline.get("speedup_ci95"))


def _summary(r: dict[str, Any]) -> str:
    rows = r["results"]
    best = max(rows, key=lambda row: row["throughput_ips"])
    text = (
        f"{r['runtime']}: p50 {rows[0]['p50_ms']:.2f} ms at batch {rows[0]['batch']}, "
        f"{best['throughput_ips']:.1f} img/s at batch {best['batch']}"
    )
    if len(r["thread_counts"]) > 1:
        text += f" ({best['threads'] or 'default'} thread{'s' if best['threads'] != 1 else ''})"
    if "baseline" in r:
        shown, ok = speedup_text(r["baseline"])
        text += f", {shown} vs PyTorch eager" if ok else f", vs PyTorch eager {shown}"
    return text


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def _speedup(
    runner: Runner,
    input_name: str,
    images: np.ndarray,
    batch: int,
    reference: Any,
    settings: BenchSettings,
    threads: int | None,
) -> dict[str, Any]:
    """Artifact and PyTorch eager timed in alternating rounds on the same input, so machine noise hits both
    alike, until the 95% interval on the ratio decides it and pins it down (at most a factor MAX_SPREAD
    between its ends) or the time budget runs out. `supported` says whether the figure may be shown as one
    (vopt.bench.timing.ratio_supported); otherwise reports call it inconclusive."""
    import torch

    from vopt.bench.timing import MAX_SPREAD, compare_until_stable, ratio_supported

    x = tile(images, batch)
    tx = torch.from_numpy(x)
    old_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)  # the same thread budget as the artifact
    try:

        def eager() -> Any:
            with torch.inference_mode():
                return reference(tx)

        t = compare_until_stable(
            eager,
            lambda: runner({input_name: x}),
            min_rounds=settings.rounds,
            budget_s=SPEEDUP_BUDGET_S,
            warmup=max(1, min(settings.warmup, 3)),
            max_spread=MAX_SPREAD,
        )
    finally:
        torch.set_num_threads(old_threads)
    low, high = t["low"], t["high"]
    return {
        "batch": batch,
        "artifact_p50_ms": t["candidate_p50_ms"],
        "pytorch_p50_ms": t["baseline_p50_ms"],
        "speedup": t["ratio"],
        # JSON has no infinity: one round gives no interval
        "speedup_ci95": [round(low, 4), round(high, 4)] if high < float("inf") else None,
        "supported": ratio_supported(low, high),
        "verdict": t["verdict"],
        "threads": threads,
        "torch_threads": threads or old_threads,
        "rounds": t["rounds"],
        "per_round": t["per_round"],
        "stopped": t["stopped"],
        "seconds": round(t["seconds"], 2),
    }
