"""Side-by-side rows of several builds, for `vopt compare` (table, Markdown or JSON)."""

from __future__ import annotations

from typing import Any

from vopt.report import data as d

COLUMNS = ("build", "target", "precision", "size", "p50 ms", "img/s", "agreement", "speedup", "status")


def compare_rows(manifests: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """Machine-readable rows: (build dir, manifest) in, one dict per build out."""
    rows = []
    for where, m in manifests:
        p50, ips, best_batch = d.p50_at_smallest_batch(m)
        head = d.agreement(m)
        bench = m.get("benchmark") or {}
        images, n_images = d.validation_images(m)
        interval = d.agreement_interval(m)
        rows.append(
            {
                "build": (m.get("recipe") or {}).get("name", where),
                "dir": where,
                "target": m.get("target"),
                "precision": d.precision(m),
                "size_bytes": (m.get("artifact") or {}).get("size_bytes"),
                "p50_ms": p50,
                "p50_batch": min((r.get("batch", 1) for r in d.bench_rows(m)), default=None),
                "throughput_ips": ips,
                "throughput_batch": best_batch,
                "agreement_metric": head[0] if head else None,
                "agreement": head[1] if head else None,
                "agreement_ci95": interval[1] if interval else None,
                "validation_images": n_images,
                # one key per distinct image set, so builds measured on the same images can be told apart
                "validation_set": _set_key(images),
                "speedup_vs_pytorch": (bench.get("baseline") or {}).get("speedup"),
                "speedup_vs_pytorch_ci95": (bench.get("baseline") or {}).get("speedup_ci95"),
                # the figure is a headline only when its 95% interval supports it (vopt.bench.timing)
                "speedup_vs_pytorch_supported": (d.eager_speedup_text(m) or ("", False))[1],
                "runtime": bench.get("runtime") or (m.get("validation") or {}).get("runtime"),
                "status": m.get("status"),
            }
        )
    return rows


def display_cells(row: dict[str, Any]) -> list[str]:
    agree = f"{row['agreement_metric']} {row['agreement']:.4f}" if row["agreement"] is not None else "-"
    return [
        str(row["build"]),
        str(row["target"]),
        str(row["precision"]),
        d.fmt_bytes(row["size_bytes"]),
        _p50(row),
        f"{row['throughput_ips']:.1f} (b{row['throughput_batch']})"
        if row["throughput_ips"] is not None
        else "-",
        agree,
        _speedup(row),
        str(row["status"]),
    ]


def compare_markdown(rows: list[dict[str, Any]]) -> str:
    from vopt.report.document import Table
    from vopt.report.markdown import table_md

    return "\n".join(table_md(Table(list(COLUMNS), [display_cells(r) for r in rows]))) + "\n"


def _p50(row: dict[str, Any]) -> str:
    if row["p50_ms"] is None:
        return "-"
    return f"{row['p50_ms']:.3f}" + (f" (b{row['p50_batch']})" if row["p50_batch"] not in (None, 1) else "")


def _speedup(row: dict[str, Any]) -> str:
    """'2.52x' when its interval supports the figure, else 'inconclusive' (the JSON has the ratio and the
    interval)."""
    if not row["speedup_vs_pytorch"]:
        return "-"
    return f"{row['speedup_vs_pytorch']:.2f}x" if row["speedup_vs_pytorch_supported"] else "inconclusive"


def _set_key(images: frozenset[str] | None) -> str | None:
    import hashlib

    if not images:
        return None
    return hashlib.sha256("\n".join(sorted(images)).encode()).hexdigest()[:12]
