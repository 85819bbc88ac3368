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


# Two-sided 95% Student t quantiles by degrees of freedom (1.96 beyond the table).
_T975 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
         12: 2.179, 15: 2.131, 20: 2.086, 25: 2.060, 30: 2.042, 40: 2.021, 60: 2.000, 120: 1.980}


def t975(df: int) -> float:
    """The 97.5% quantile of Student's t with `df` degrees of freedom (the nearest tabled df at or below)."""
    if df <= 0:
        return float("inf")
    return _T975[max(k for k in _T975 if k <= df)] if df <= 120 else 1.96


def ratio_interval(log_ratios: list[float]) -> tuple[float, float, float]:
    """(ratio, low, high): the geometric-mean ratio and its 95% t-interval, from per-round log ratios."""
    arr = np.asarray(log_ratios, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) < 2:
        return float(np.exp(mean)), 0.0, float("inf")
    half = t975(len(arr) - 1) * float(arr.std(ddof=1)) / np.sqrt(len(arr))
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))


def compare_until_stable(baseline: Callable[[], Any], candidate: Callable[[], Any], *, min_rounds: int = 5,
                         max_rounds: int = 200, budget_s: float = 8.0, per_round: int = 3,
                         warmup: int = 3) -> dict[str, Any]:
    """Speed ratio baseline-time / candidate-time (>1: the candidate is faster), timed in interleaved rounds until
    the 95% interval on the ratio excludes 1, or at `max_rounds` / `budget_s`. Each round takes the median of
    `per_round` calls of each (the order alternates between rounds); the interval is a t-interval on the mean
    per-round log ratio, so a noisy machine that slows both alike moves neither the ratio nor its width much."""
    for _ in range(warmup):
        baseline()
        candidate()
    start = time.perf_counter()
    base_ms: list[float] = []
    cand_ms: list[float] = []
    logs: list[float] = []
    stopped = "max_rounds"
    for i in range(max_rounds):
        pair = [(baseline, base_ms), (candidate, cand_ms)]
        for call, sink in pair if i % 2 == 0 else pair[::-1]:
            times = []
            for _ in range(per_round):
                t = time.perf_counter()
                call()
                times.append((time.perf_counter() - t) * 1e3)
            sink.append(float(np.median(times)))
        logs.append(float(np.log(base_ms[-1] / cand_ms[-1])))
        if len(logs) >= min_rounds:
            _, lo, hi = ratio_interval(logs)
            if lo > 1.0 or hi < 1.0:
                stopped = "interval excludes 1"
                break
        if time.perf_counter() - start >= budget_s and len(logs) >= min(2, min_rounds):
            stopped = "time budget"
            break
    ratio, lo, hi = ratio_interval(logs)
    return {
        "ratio": ratio, "low": lo, "high": hi, "rounds": len(logs), "per_round": per_round,
        "baseline_p50_ms": float(np.median(base_ms)), "candidate_p50_ms": float(np.median(cand_ms)),
        "seconds": time.perf_counter() - start, "stopped": stopped,
        "verdict": "faster" if lo > 1.0 else "slower" if hi < 1.0 else "inconclusive",
    }
