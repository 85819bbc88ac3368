"""The timing loop every benchmark uses: warm-up, then count- or time-bounded runs."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np


def time_calls(
    call: Callable[[], Any], *, warmup: int = 3, iterations: int = 20, seconds: float | None = None
) -> dict[str, float]:
    """Latency stats in milliseconds. `first_ms` is the first (cold) call, before warm-up."""
    t0 = time.perf_counter()
    call()
    first_ms = (time.perf_counter() - t0) * 1e3
    for _ in range(max(0, warmup - 1)):
        call()
    times: list[float] = []
    deadline = time.perf_counter() + seconds if seconds else None
    while True:
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1e3)
        if deadline is not None:
            if time.perf_counter() >= deadline and len(times) >= 3:
                break
        elif len(times) >= iterations:
            break
    arr = np.asarray(times)
    return {
        "first_ms": first_ms,
        "mean_ms": float(arr.mean()),
        "p50_ms": float(np.percentile(arr, 50)),
        "p90_ms": float(np.percentile(arr, 90)),
        "p99_ms": float(np.percentile(arr, 99)),
        "min_ms": float(arr.min()),
        "iterations": len(times),
    }


def interleaved(calls: dict[str, Callable[[], Any]], *, rounds: int = 5, per_round: int = 5, warmup: int = 2) -> dict[str, dict[str, float]]:
    """Time several callables in alternating rounds, so a noisy machine hits all of them alike."""
    for call in calls.values():
        for _ in range(warmup):
            call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            for _ in range(per_round):
                t = time.perf_counter()
                call()
                samples[name].append((time.perf_counter() - t) * 1e3)
    return {
        name: {"p50_ms": float(np.median(v)), "mean_ms": float(np.mean(v)), "iterations": len(v)} for name, v in samples.items()
    }
