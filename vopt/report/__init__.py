"""Reports rendered from the manifest: report.md, a self-contained report.html, and the plots as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_plots(manifest: dict[str, Any]) -> dict[str, bytes]:
    """Plot name -> PNG bytes, for the plots this manifest has data for."""
    from vopt.report import data
    from vopt.report.plots import latency_vs_batch, size_vs_agreement

    name = (manifest.get("recipe") or {}).get("name", "?")
    runtime = (manifest.get("benchmark") or {}).get("runtime", manifest.get("target", "?"))
    images: dict[str, bytes] = {}
    png = latency_vs_batch(data.bench_rows(manifest), f"{name} on {runtime}")
    if png:
        images["latency_vs_batch"] = png
    metric, points = data.agreement_points(manifest)
    if len(points) >= 1:
        png = size_vs_agreement(points, metric, f"{name}: size vs {metric.replace('_', ' ')}")
        if png:
            images["size_vs_agreement"] = png
    return images


def write_reports(manifest: dict[str, Any], out_dir: Path) -> None:
    from vopt.report.html import render_html
    from vopt.report.markdown import render_markdown

    out_dir = Path(out_dir)
    images = make_plots(manifest)
    files = {}
    if images:
        (out_dir / "plots").mkdir(exist_ok=True)
    for key, png in images.items():
        (out_dir / "plots" / f"{key}.png").write_bytes(png)
        files[key] = f"plots/{key}.png"
    (out_dir / "report.md").write_text(render_markdown(manifest, files))
    (out_dir / "report.html").write_text(render_html(manifest, images))
