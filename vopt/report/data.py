"""Numbers pulled out of a manifest, shared by report.md, report.html and `vopt compare`.
Reads defensively: a manifest may come from an older vopt or a build that skipped a stage."""

from __future__ import annotations

from typing import Any

from vopt.validate.tasks import headline


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{int(n)} B"


def fmt_num(v: Any, digits: int = 6) -> str:
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}g}"
    if v is None:
        return "-"
    return str(v)


def precision(manifest: dict[str, Any]) -> str:
    """The artifact's precision as its metadata says (worked out once, when it was built): the manifest's
    `precision`, else its artifact entry's; "-" for a build that made no artifact (a failed gate)."""
    value = manifest.get("precision") or ((manifest.get("artifact") or {}).get("meta") or {}).get("precision")
    return str(value) if value else "-"


def stage_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for s in manifest.get("steps") or []:
        rep = s.get("report") or {}
        rows.append(
            {
                "stage": s.get("stage"),
                "cached": bool(s.get("cached")),
                "seconds": s.get("seconds"),
                "size": s.get("output_bytes"),
                "summary": rep.get("summary", ""),
            }
        )
    return rows


def bench_rows(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    bench = manifest.get("benchmark") or {}
    return [r for r in bench.get("results") or [] if isinstance(r, dict)]


def p50_at_smallest_batch(manifest: dict[str, Any]) -> tuple[float | None, float | None, int | None]:
    """(p50 ms and img/s at the smallest batch, best img/s over the sweep)."""
    rows = bench_rows(manifest)
    if not rows:
        return None, None, None
    first_threads = rows[0].get("threads")  # with a thread sweep, the latency of the first setting
    first = min((r for r in rows if r.get("threads") == first_threads), key=lambda r: r.get("batch", 1))
    best = max(rows, key=lambda r: r.get("throughput_ips", 0))
    return first.get("p50_ms"), best.get("throughput_ips"), best.get("batch")


def agreement(manifest: dict[str, Any]) -> tuple[str, float] | None:
    return headline(manifest.get("validation"))


def sensitivity(manifest: dict[str, Any]) -> tuple[list[str], list[list[Any]]] | None:
    """The quantization sensitivity table, whatever its shape: a list of row dicts, or a mapping of
    layer -> number or -> dict."""
    for step in manifest.get("steps") or []:
        rep = step.get("report") or {}
        sens = rep.get("sensitivity") if isinstance(rep, dict) else None
        if not sens:
            continue
        if isinstance(sens, dict) and isinstance(sens.get("layers"), list):
            sens = sens["layers"]
        if isinstance(sens, list) and all(isinstance(r, dict) for r in sens):
            cols: list[str] = []
            for r in sens:
                cols += [k for k in r if k not in cols]
            return cols, [[r.get(c) for c in cols] for r in sens]
        if isinstance(sens, dict):
            inner = [v for v in sens.values() if isinstance(v, dict)]
            if inner and len(inner) == len(sens):
                cols = []
                for v in inner:
                    cols += [k for k in v if k not in cols]
                return ["layer", *cols], [[k, *[v.get(c) for c in cols]] for k, v in sens.items()]
            return ["layer", "value"], [[k, v] for k, v in sens.items()]
    return None


def agreement_points(manifest: dict[str, Any]) -> tuple[str, list[tuple[str, float, float]]]:
    """(metric, [(label, size bytes, agreement)]): the original model (the reference, 1.0 by definition)
    and the final artifact, plus any step whose report measured the same metric."""
    head = agreement(manifest)
    if head is None:
        return "", []
    metric, value = head
    points = []
    steps = manifest.get("steps") or []
    sized = [s for s in steps if s.get("output_bytes")]
    if sized and sized[0].get("stage") == "load":
        points.append(("original (PyTorch)", float(sized[0]["output_bytes"]), 1.0))
    for s in sized[1:-1]:
        rep = s.get("report") or {}
        # A step's own check (export parity, the quantize step's check) may have measured the same metric.
        own = [headline(rep[k]) for k in ("check", "parity") if isinstance(rep.get(k), dict)]
        h = headline(rep) or next((x for x in own if x), None)
        if h and h[0] == metric:
            points.append((f"after {s['stage']}", float(s["output_bytes"]), h[1]))
    art = manifest.get("artifact") or {}
    if art.get("size_bytes"):
        label = f"{manifest.get('target', '?')} {precision(manifest)} (final)"
        points.append((label, float(art["size_bytes"]), value))
    return metric, points
