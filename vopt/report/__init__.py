"""Reports rendered from the manifest: report.md, a self-contained report.html, and the plots as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def make_plots(manifest: dict[str, Any], errors: list[str] | None = None) -> dict[str, bytes]:
    """Plot name -> PNG bytes, for the plots this manifest has data for."""
    from vopt.report import data
    from vopt.report.plots import latency_vs_batch, op_time, size_vs_agreement

    name = (manifest.get("recipe") or {}).get("name", "?")
    runtime = (manifest.get("benchmark") or {}).get("runtime", manifest.get("target", "?"))
    metric, points = data.agreement_points(manifest)
    makers = {
        "latency_vs_batch": lambda: latency_vs_batch(data.bench_rows(manifest), f"{name} on {runtime}"),
        "size_vs_agreement": lambda: size_vs_agreement(
            points, metric, f"{name}: size vs {metric.replace('_', ' ')}"
        ),
        "op_time": lambda: op_time(
            (manifest.get("benchmark") or {}).get("profile"), f"{name}: time per op type"
        ),
    }
    images: dict[str, bytes] = {}
    for key, make in makers.items():
        try:
            png = make()
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the user a finished build
            if errors is not None:
                errors.append(f"plot {key} not drawn: {type(exc).__name__}: {exc}")
            continue
        if png:
            images[key] = png
    return images


def write_reports(manifest: dict[str, Any], out_dir: Path) -> None:
    from vopt.report.html import render_html
    from vopt.report.markdown import render_markdown

    out_dir = Path(out_dir)
    errors: list[str] = []
    images = make_plots(manifest, errors)
    if errors:  # said in the report itself, not in manifest.json (already written)
        manifest = {**manifest, "warnings": [*(manifest.get("warnings") or []), *errors]}
    files = {}
    if images:
        (out_dir / "plots").mkdir(exist_ok=True)
    for key, png in images.items():
        (out_dir / "plots" / f"{key}.png").write_bytes(png)
        files[key] = f"plots/{key}.png"
    (out_dir / "report.md").write_text(render_markdown(manifest, files))
    (out_dir / "report.html").write_text(render_html(manifest, images))
