"""matplotlib figures as PNG bytes (Agg backend; matplotlib is imported only here, only when used)."""

from __future__ import annotations

import io
from typing import Any

ACCENT = "#2f6fb0"
SECOND = "#d9822b"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return buf.getvalue()


def latency_vs_batch(rows: list[dict[str, Any]], title: str) -> bytes | None:
    """p50 latency (with the p90 band) and throughput against batch size; one line pair per thread count."""
    rows = [r for r in rows if "batch" in r and "p50_ms" in r]
    if len({r["batch"] for r in rows}) < 2:
        return None  # one batch size is a table row (the report's benchmark table), not a chart
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax2 = ax.twinx()
    counts = list(dict.fromkeys(r.get("threads") for r in rows))
    colors = [ACCENT, "#3a9a5b", "#8a4fbf", "#b33a3a"]
    for i, threads in enumerate(counts):
        sub = sorted((r for r in rows if r.get("threads") == threads), key=lambda r: r["batch"])
        b = [r["batch"] for r in sub]
        suffix = f", {_threads(threads)}" if len(counts) > 1 else ""
        color = colors[i % len(colors)]
        ax.plot(b, [r["p50_ms"] for r in sub], "o-", color=color, label=f"p50 latency{suffix}")
        if all("p90_ms" in r for r in sub):
            ax.fill_between(
                b,
                [r["p50_ms"] for r in sub],
                [r["p90_ms"] for r in sub],
                color=color,
                alpha=0.12,
                label="p50 to p90" if i == 0 else None,
            )
        ax2.plot(
            b,
            [r.get("throughput_ips", 0) for r in sub],
            "s--",
            color=SECOND if len(counts) == 1 else color,
            alpha=0.9,
            label=f"throughput{suffix}",
        )
    ax.set_xlabel("batch size")
    ax.set_ylabel("latency per batch (ms)")
    ax.set_xticks(sorted({r["batch"] for r in rows}))
    ax.grid(alpha=0.3)
    ax2.set_ylabel("throughput (img/s, dashed)")
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], loc="upper left", fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def size_vs_agreement(points: list[tuple[str, float, float]], metric: str, title: str) -> bytes | None:
    """One point per artifact: size on x, agreement with the reference on y."""
    if not points:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, (label, size, value) in enumerate(points):
        color = "#888888" if label.startswith("original") else (ACCENT if i % 2 else SECOND)
        ax.scatter([size / 1e6], [value], s=60, color=color, zorder=3, alpha=0.85)
        # Alternate label sides: same-size artifacts (fp32 export vs original) would overprint.
        ax.annotate(
            label,
            (size / 1e6, value),
            textcoords="offset points",
            xytext=(7, 7 if i % 2 == 0 else -13),
            fontsize=8,
        )
    ax.set_xlabel("artifact size (MB)")
    ax.set_ylabel(metric.replace("_", " "))
    lo = min(v for _, _, v in points)
    hi = max(1.0, max(v for _, _, v in points))
    span = max(0.02, hi - lo)  # a flat 1.0 line stays readable, near the top where "perfect" is
    ax.set_ylim(min(lo, hi - span) - 0.1 * span, hi + 0.1 * span)
    ax.ticklabel_format(axis="y", useOffset=False)
    sizes = [s / 1e6 for _, s, _ in points]
    pad = max(sizes) * 0.15 or 0.1
    ax.set_xlim(max(0.0, min(sizes) - pad), max(sizes) + pad * 2)
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    return _png(fig)


def _threads(n: int | None) -> str:
    return "default threads" if not n else f"{n} thread" + ("s" if n != 1 else "")


_PRECISION_COLORS = {
    "int8": ACCENT,
    "int16": "#5b8fd1",
    "fp16": "#3a9a5b",
    "bf16": "#8a4fbf",
    "fp32": SECOND,
    "convert": "#999999",
}


def op_time(profile: dict[str, Any] | None, title: str, rows: int = 12) -> bytes | None:
    """Horizontal bars: time per op type, stacked by the precision its nodes computed in."""
    if not profile or profile.get("status") != "ok" or not profile.get("by_op_type"):
        return None
    groups = profile["by_op_type"][:rows][::-1]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 0.3 * len(groups) + 1.2))
    labels = [g["op_type"] for g in groups]
    shown: set[str] = set()
    for i, g in enumerate(groups):
        prec = g["precisions"][0] if len(g["precisions"]) == 1 else "mixed"
        color = _PRECISION_COLORS.get(prec, "#b33a3a")
        ax.barh(i, g["ms"], color=color, label=None if prec in shown else prec)
        shown.add(prec)
    ax.set_yticks(range(len(groups)))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xlabel("ms per inference (sum over the op type's nodes)")
    ax.grid(alpha=0.3, axis="x")
    ax.legend(fontsize=7, frameon=False, loc="lower right")
    ax.set_title(title, fontsize=10)
    return _png(fig)
