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


def interleaved(
    calls: dict[str, Callable[[], Any]], *, rounds: int = 5, per_round: int = 5, warmup: int = 2
) -> dict[str, dict[str, float]]:
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
        name: {"p50_ms": float(np.median(v)), "mean_ms": float(np.mean(v)), "iterations": len(v)}
        for name, v in samples.items()
    }


def t_quantile(p: float, df: int) -> float:
    """Student's t quantile (Cornish-Fisher expansion around the normal one; within 1% for df >= 3)."""
    from statistics import NormalDist

    if df <= 0:
        return float("inf")
    z = NormalDist().inv_cdf(p)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def ratio_interval(log_ratios: list[float], alpha: float = 0.05) -> tuple[float, float, float]:
    """(ratio, low, high): the geometric-mean ratio and its (1 - alpha) t-interval, from per-round log
    ratios."""
    arr = np.asarray(log_ratios, dtype=np.float64)
    mean = float(arr.mean())
    if len(arr) < 2:
        return float(np.exp(mean)), 0.0, float("inf")
    half = t_quantile(1 - alpha / 2, len(arr) - 1) * float(arr.std(ddof=1)) / np.sqrt(len(arr))
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))


def looks(min_rounds: int, max_rounds: int) -> list[int]:
    """The round counts at which the interval is checked: doubling from `min_rounds`, and `max_rounds`."""
    points, n = [], max(2, min_rounds)
    while n < max_rounds:
        points.append(n)
        n *= 2
    return [*points, max_rounds]


def compare_until_stable(
    baseline: Callable[[], Any],
    candidate: Callable[[], Any],
    *,
    min_rounds: int = 5,
    max_rounds: int = 160,
    budget_s: float = 8.0,
    per_round: int = 3,
    warmup: int = 3,
    max_spread: float | None = None,
) -> dict[str, Any]:
    """Speed ratio baseline-time / candidate-time (>1: the candidate is faster), timed in interleaved rounds
    until a 95% interval on the ratio excludes 1, or at `max_rounds` / `budget_s`. Each round takes the median
    of
    `per_round` calls of each (the order alternates between rounds); the interval is a t-interval on the mean
    per-round log ratio, so load that slows both alike moves neither the ratio nor its width much.

    The interval is looked at only at doubling round counts (and when time runs out), each look at
    alpha 0.05 / number of looks (Bonferroni): peeking every round would call a tie decided far more often
    than 5% of the time. The reported interval is that simultaneous one.

    `max_spread`: also keep timing while the interval's ends are further apart than that factor (high / low),
    so that a ratio shown as a headline is pinned down, not only its direction (`ratio_supported`)."""
    for _ in range(warmup):
        baseline()
        candidate()
    start = time.perf_counter()
    points = looks(min_rounds, max_rounds)
    alpha = 0.05 / (len(points) + 1)  # the looks, plus one at the time budget
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
        out_of_time = time.perf_counter() - start >= budget_s and len(logs) >= 2
        if len(logs) in points or out_of_time:
            _, lo, hi = ratio_interval(logs, alpha)
            if (lo > 1.0 or hi < 1.0) and (max_spread is None or hi / lo <= max_spread):
                stopped = "interval excludes 1"
                break
            if out_of_time:
                stopped = "time budget"
                break
    ratio, lo, hi = ratio_interval(logs, alpha)
    return {
        "ratio": ratio,
        "low": lo,
        "high": hi,
        "rounds": len(logs),
        "per_round": per_round,
        "alpha": alpha,
        "baseline_p50_ms": float(np.median(base_ms)),
        "candidate_p50_ms": float(np.median(cand_ms)),
        "seconds": time.perf_counter() - start,
        "stopped": stopped,
        "verdict": "faster" if lo > 1.0 else "slower" if hi < 1.0 else "inconclusive",
    }


# A measured speed ratio is shown as a figure ("2.52x") only when its 95% interval decides the direction
# (excludes 1) and pins the figure down: its ends at most this factor apart. Otherwise it is "inconclusive",
# with the ratio and the interval beside it: a sub-millisecond run on a loaded machine once read 664x.
MAX_SPREAD = 2.0


def ratio_supported(low: float | None, high: float | None) -> bool:
    """Whether a ratio's 95% interval [low, high] supports showing the ratio as a figure."""
    if low is None or high is None or not (low > 0 and high < float("inf")):
        return False
    return (low > 1.0 or high < 1.0) and high / low <= MAX_SPREAD


def describe_ratio(ratio: float | None, ci95: list[float] | tuple[float, float] | None) -> tuple[str, bool]:
    """('2.52x (95% CI 2.31-2.75)', True) for a ratio its interval supports; ('inconclusive (40.45x, 95% CI
    3.10-528.00)', False) otherwise, and 'inconclusive (40.45x, no interval)' for one measured without an
    interval (a manifest from an older vopt)."""
    if ratio is None:
        return "-", False
    if not ci95 or len(ci95) != 2 or ci95[0] is None or ci95[1] is None:
        return f"inconclusive ({ratio:.2f}x, no interval)", False
    low, high = float(ci95[0]), float(ci95[1])
    interval = f"95% CI {low:.2f}-{high:.2f}" if high < float("inf") else "no interval from one round"
    if ratio_supported(low, high):
        return f"{ratio:.2f}x ({interval})", True
    return f"inconclusive ({ratio:.2f}x, {interval})", False
