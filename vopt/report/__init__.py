"""Reports rendered from the manifest: report.md, a self-contained report.html, and the plots as PNG files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PLOT_INDEX = "index.json"  # plot name -> hash of what it was drawn from, in a build dir's plots/


def make_plots(
    manifest: dict[str, Any], errors: list[str] | None = None, previous: Path | None = None
) -> tuple[dict[str, bytes], dict[str, str]]:
    """Plot name -> PNG bytes for the plots this manifest has data for, and name -> hash of each plot's
    inputs. A plot whose inputs match the one in `previous` (the last build's plots/ directory) is reused,
    not drawn: an unchanged rebuild then never imports matplotlib (1.9 s of a 2.5 s rebuild here)."""
    from vopt.report import data
    from vopt.report.plots import latency_vs_batch, op_time, size_vs_agreement

    name = (manifest.get("recipe") or {}).get("name", "?")
    runtime = (manifest.get("benchmark") or {}).get("runtime", manifest.get("target", "?"))
    agree = data.agreement_points(manifest)
    makers: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "latency_vs_batch": (latency_vs_batch, (data.bench_rows(manifest), f"{name} on {runtime}")),
        "size_vs_agreement": (
            size_vs_agreement,
            (
                agree.points,
                agree.metric,
                f"{name}: size vs {data.metric_name(agree.metric)}, every point on {agree.images}",
            ),
        ),
        "op_time": (
            op_time,
            ((manifest.get("benchmark") or {}).get("profile"), f"{name}: time per op type"),
        ),
    }
    drawn_before = _plot_index(previous)
    images: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    for key, (draw, args) in makers.items():
        digest = _plot_hash(key, args)
        old = previous / f"{key}.png" if previous is not None else None
        if drawn_before.get(key) == digest and old is not None and old.is_file():
            images[key], hashes[key] = old.read_bytes(), digest
            continue
        try:
            png = draw(*args)
        except Exception as exc:  # noqa: BLE001 - a plot must never cost the user a finished build
            if errors is not None:
                errors.append(f"plot {key} not drawn: {type(exc).__name__}: {exc}")
            continue
        if png:
            images[key], hashes[key] = png, digest
    return images, hashes


def _plot_hash(key: str, args: tuple[Any, ...]) -> str:
    import hashlib
    import json

    import vopt

    text = json.dumps([vopt.__version__, key, args], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _plot_index(plots: Path | None) -> dict[str, str]:
    import json

    if plots is None:
        return {}
    try:
        index = json.loads((plots / PLOT_INDEX).read_text())
    except (OSError, ValueError):
        return {}
    return index if isinstance(index, dict) else {}


def write_reports(manifest: dict[str, Any], out_dir: Path, previous: Path | None = None) -> None:
    """`previous`: the build directory this one replaces, whose plots are reused where their data is the
    same."""
    import json

    from vopt.report.html import render_html
    from vopt.report.markdown import render_markdown

    out_dir = Path(out_dir)
    errors: list[str] = []
    images, hashes = make_plots(manifest, errors, previous / "plots" if previous is not None else None)
    if errors:  # said in the report itself, not in manifest.json (already written)
        manifest = {**manifest, "warnings": [*(manifest.get("warnings") or []), *errors]}
    files = {}
    if images:
        (out_dir / "plots").mkdir(exist_ok=True)
    for key, png in images.items():
        (out_dir / "plots" / f"{key}.png").write_bytes(png)
        files[key] = f"plots/{key}.png"
    if images:
        (out_dir / "plots" / PLOT_INDEX).write_text(json.dumps(hashes, indent=1, sort_keys=True) + "\n")
    (out_dir / "report.md").write_text(render_markdown(manifest, files))
    (out_dir / "report.html").write_text(render_html(manifest, images))
