"""Honest rates: every agreement or accuracy comes with its sample count and a 95% Wilson interval, and a
threshold says how many images it takes to resolve it."""

from __future__ import annotations

import math

Z95 = 1.959963984540054


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a binomial rate; (0, 1) when there are no samples."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def paired_difference(lost: int, gained: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Interval of (lost - gained) / n for a paired comparison on the same images, e.g. the top-1 drop:
    `lost` images the reference got right and the artifact wrong, `gained` the reverse. Agresti-Min: half a
    count added to each cell keeps the interval sensible when there are no discordant images."""
    if n <= 0:
        return -1.0, 1.0
    b, c, m = lost + 0.5, gained + 0.5, n + 2
    d = (b - c) / m
    var = ((b + c) - (b - c) ** 2 / m) / (m * m)
    half = z * math.sqrt(max(var, 0.0))
    return max(-1.0, d - half), min(1.0, d + half)


def needed_samples(threshold: float, z: float = Z95, limit: int = 1_000_000) -> int | None:
    """Images needed before a rate measured right at `threshold` can be told from one with twice the misses
    (0.99 from 0.98, 0.9 from 0.8): the smallest n whose Wilson interval at the threshold excludes that rate.
    None for thresholds at 0 or 1 (nothing finite resolves them)."""
    if not 0.0 < threshold < 1.0:
        return None
    worse = max(0.0, 1 - 2 * (1 - threshold))

    def resolves(n: int) -> bool:
        return wilson(threshold * n, n, z)[0] > worse

    hi = 2
    while not resolves(hi):
        hi *= 2
        if hi > limit:
            return None
    lo = hi // 2
    while lo + 1 < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if resolves(mid) else (mid, hi)
    return hi


def rate(successes: int, n: int) -> dict[str, float | int]:
    """A rate as reports carry it: value, count, and the 95% Wilson interval."""
    lo, hi = wilson(successes, n)
    return {
        "value": successes / n if n else float("nan"),
        "successes": int(successes),
        "n": int(n),
        "ci95": [round(lo, 6), round(hi, 6)],
    }


def format_rate(value: float, n: int, ci: list[float] | tuple[float, float], percent: bool = False) -> str:
    """`0.965 (n=100, 95% CI 0.915-0.986)`, or in percent for accuracies."""
    if percent:
        return f"{100 * value:.1f}% (n={n}, 95% CI {100 * ci[0]:.1f}-{100 * ci[1]:.1f}%)"
    return f"{value:.3f} (n={n}, 95% CI {ci[0]:.3f}-{ci[1]:.3f})"
