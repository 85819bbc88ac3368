"""The benchmark: an artifact on its runtime, a batch sweep, and PyTorch eager interleaved for the speedup.
Shared by the `benchmark:` stage and `vopt bench`."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from vopt.bench.memory import current_rss_mb, peak_rss_mb, reset_peak
from vopt.bench.timing import interleaved, time_calls
from vopt.pipeline.progress import QuietReporter, Reporter
from vopt.targets.base import Runner


@dataclass
class BenchSettings:
    batch_sizes: list[int]
    warmup: int = 3
    iterations: int = 20
    seconds: float | None = None
    threads: int | None = None
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
    make_runner: Callable[[], Runner],
    input_name: str,
    batch_dim: int | str | None,
    images: np.ndarray,
    settings: BenchSettings,
    *,
    load_reference: Callable[[], Any] | None = None,
    artifact_bytes: int | None = None,
    reporter: Reporter | None = None,
) -> dict[str, Any]:
    """`images` are real preprocessed samples (tiled up to each batch size). `load_reference` returns a
    torch module mapping the same input to outputs (loaded after the sweep, so it is not in the peak RSS),
    or is None for no speedup figure."""
    reporter = reporter or QuietReporter()
    batches, skipped = plan_batches(settings.batch_sizes, batch_dim)
    warnings = []
    if skipped:
        warnings.append(f"batch sizes {skipped} skipped: the artifact's batch axis is static ({batch_dim})")
    load = _load_average()
    if load is not None and load >= (os.cpu_count() or 1):
        warnings.append(f"the machine is busy (load average {load:.1f} on {os.cpu_count()} CPUs): timings are noisy; "
                        "the interleaved speedup holds better than absolute numbers")
    reset_peak()
    rss_before = current_rss_mb()
    t0 = time.perf_counter()
    runner = make_runner()
    load_ms = (time.perf_counter() - t0) * 1e3
    rows = []
    steps = len(batches) + (1 if load_reference is not None and settings.baseline else 0)
    try:
        with reporter.bar(f"benchmark on {runner.runtime}", steps) as advance:
            for b in batches:
                x = {input_name: tile(images, b)}
                try:
                    stats = time_calls(lambda x=x: runner(x), warmup=settings.warmup, iterations=settings.iterations,
                                       seconds=settings.seconds)
                except Exception as exc:  # noqa: BLE001 - one batch size the runtime refuses must not sink the sweep
                    if not rows and b == batches[-1]:
                        raise
                    skipped.append(b)
                    warnings.append(f"batch {b} failed on {runner.runtime}: {type(exc).__name__}: {str(exc)[:300]}")
                    advance(1)
                    continue
                stats["batch"] = b
                stats["throughput_ips"] = b * 1e3 / stats["mean_ms"]
                rows.append(stats)
                advance(1)
            if not rows:
                raise RuntimeError(f"every batch size failed on {runner.runtime}: {'; '.join(warnings)}")
            batches = [r["batch"] for r in rows]
            peak = peak_rss_mb()
            result: dict[str, Any] = {
                "runtime": runner.runtime,
                "runtime_info": runner.info,
                "threads": settings.threads,
                "cpus": os.cpu_count(),
                "load_average": load,
                "batch_sizes": batches,
                "skipped_batch_sizes": skipped,
                "load_ms": load_ms,
                "cold_ms": rows[0]["first_ms"],
                "results": rows,
                "peak_rss_mb": peak,
                "runtime_rss_mb": None if rss_before is None else max(0.0, peak - rss_before),
                "artifact_bytes": artifact_bytes,
                "settings": {"warmup": settings.warmup, "iterations": settings.iterations, "seconds": settings.seconds},
            }
            if load_reference is not None and settings.baseline:
                result["baseline"] = _speedup(runner, input_name, images, batches[0], load_reference(), settings)
                advance(1)
    finally:
        if runner.close is not None:
            runner.close()
    if warnings:
        result["warnings"] = warnings
    best = max(rows, key=lambda r: r["throughput_ips"])
    summary = f"{runner.runtime}: p50 {rows[0]['p50_ms']:.2f} ms at batch {rows[0]['batch']}, " \
              f"{best['throughput_ips']:.1f} img/s at batch {best['batch']}"
    if "baseline" in result:
        summary += f", {result['baseline']['speedup']:.2f}x vs PyTorch eager"
    result["summary"] = summary
    return result


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (OSError, AttributeError):  # not on every platform
        return None


def _speedup(runner: Runner, input_name: str, images: np.ndarray, batch: int, reference: Any,
             settings: BenchSettings) -> dict[str, Any]:
    """Artifact and PyTorch eager timed in alternating rounds on the same input, so machine noise
    hits both alike and the ratio holds."""
    import torch

    x = tile(images, batch)
    tx = torch.from_numpy(x)
    old_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        def eager() -> Any:
            with torch.inference_mode():
                return reference(tx)

        per_round = max(1, settings.iterations // settings.rounds)
        t = interleaved({"artifact": lambda: runner({input_name: x}), "pytorch": eager},
                        rounds=settings.rounds, per_round=per_round, warmup=max(1, min(settings.warmup, 3)))
    finally:
        torch.set_num_threads(old_threads)
    return {
        "batch": batch,
        "artifact_p50_ms": t["artifact"]["p50_ms"],
        "pytorch_p50_ms": t["pytorch"]["p50_ms"],
        "speedup": t["pytorch"]["p50_ms"] / t["artifact"]["p50_ms"],
        "torch_threads": settings.threads or old_threads,
        "rounds": settings.rounds,
        "per_round": per_round,
    }
