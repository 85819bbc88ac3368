"""Numbers pulled out of a manifest, shared by report.md, report.html and `vopt compare`.
Reads defensively: a manifest may come from an older vopt or a build that skipped a stage."""

from __future__ import annotations

from dataclasses import dataclass, field
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


def agreement_interval(manifest: dict[str, Any]) -> tuple[int, list[float]] | None:
    """(n, [low, high]) of the headline agreement's 95% interval, for a rate that has one."""
    head = agreement(manifest)
    v = manifest.get("validation") or {}
    found = (v.get("intervals") or {}).get(head[0]) if head else None
    if not isinstance(found, dict) or not found.get("ci95"):
        return None
    return int(found.get("n") or 0), [float(x) for x in found["ci95"]]


def agreement_text(manifest: dict[str, Any], images: str = "images") -> str | None:
    """'100.0% on 9 images (95% CI 70.1-100.0%)' for a rate with its interval, '0.9402' for a similarity:
    the headline agreement of the final artifact with the reference, as validation measured it. `images`
    names them ('images held out from calibration')."""
    head = agreement(manifest)
    if head is None:
        return None
    metric, value = head
    interval = agreement_interval(manifest)
    if not metric.endswith("agreement"):
        return f"{value:.4f}"
    if interval is None:  # a rate measured without its interval (a pipeline of components, an older vopt)
        return f"{100 * value:.1f}%"
    n, (low, high) = interval
    return f"{100 * value:.1f}% on {n} {images} (95% CI {100 * low:.1f}-{100 * high:.1f}%)"


def validation_held_out(manifest: dict[str, Any]) -> bool:
    """Whether validation measured on images that calibration never saw: a quantize step calibrated on
    images, and validation's data says no overlap (split by content hash, or checked against calibration)."""
    calibrated = any(
        ((s.get("report") or {}).get("data") or {}).get("calibration_images")
        for s in manifest.get("steps") or []
        if s.get("stage") == "quantize"
    )
    how = str(((manifest.get("validation") or {}).get("data") or {}).get("how") or "")
    return bool(calibrated) and "IN-SAMPLE" not in how and "OVERLAPS" not in how


def metric_name(metric: str) -> str:
    """top1_agreement -> top-1 agreement."""
    return metric.replace("top1_", "top-1 ").replace("top5_", "top-5 ").replace("_", " ")


def quantized_speedup(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The quantize step's timed comparison with the float model on the target's runtime (its `speed`
    report), when it was measured."""
    for step in manifest.get("steps") or []:
        if step.get("stage") != "quantize":
            continue
        speed = (step.get("report") or {}).get("speed") or {}
        if speed.get("status") in ("ok", "inconclusive") and speed.get("speedup") is not None:
            return speed
    return None


def quantized_speedup_text(manifest: dict[str, Any]) -> tuple[str, bool] | None:
    """The quantized artifact's speed over the float model on the same runtime: ('1.56x (95% CI
    1.21-2.02)', True), or ('inconclusive (...)', False) when its interval does not support a figure."""
    from vopt.bench.timing import describe_ratio

    speed = quantized_speedup(manifest)
    if speed is None:
        return None
    return describe_ratio(speed["speedup"], speed.get("speedup_ci95"))


def eager_speedup_text(manifest: dict[str, Any]) -> tuple[str, bool] | None:
    """The benchmark's artifact-vs-PyTorch-eager ratio as a figure its interval supports, or inconclusive."""
    from vopt.bench.timing import describe_ratio

    base = (manifest.get("benchmark") or {}).get("baseline") or {}
    if base.get("speedup") is None:
        return None
    return describe_ratio(base["speedup"], base.get("speedup_ci95"))


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


@dataclass
class AgreementPlot:
    """What the size-vs-agreement plot shows: points measured on one image set only (like with like), each
    labelled with that set, and the points measured on another set, named and left out."""

    metric: str = ""
    points: list[tuple[str, float, float]] = field(default_factory=list)  # (label, size bytes, agreement)
    images: str = ""  # the set every point was measured on
    left_out: list[str] = field(default_factory=list)


def _image_set(entries: Any) -> frozenset[str] | None:
    """The content hashes (or, for older manifests, the names) of a measurement's images."""
    if not isinstance(entries, list) or not entries:
        return None
    keys = [e.get("sha256") or e.get("file") if isinstance(e, dict) else str(e) for e in entries]
    return frozenset(k for k in keys if k) or None


def validation_images(manifest: dict[str, Any]) -> tuple[frozenset[str] | None, int | None]:
    """(the images validation measured on, as content hashes or names; how many distinct images)."""
    v = manifest.get("validation") or {}
    found = _image_set((v.get("data") or {}).get("validate_images") or v.get("image_files"))
    return found, v.get("distinct_images") or v.get("samples")


def agreement_points(manifest: dict[str, Any]) -> AgreementPlot:
    """The original model (the reference, 1.0 by definition) and the final artifact, as validation measured
    it, plus any earlier step whose own check measured the same metric on the same images (the quantize
    step's check, when its held-out images are validation's). A step measured on other images is not
    plotted beside validation as if the later steps had changed its number: it is named in `left_out`."""
    head = agreement(manifest)
    if head is None:
        return AgreementPlot()
    metric, value = head
    final_set, n = validation_images(manifest)
    images = f"validation's {n} images" if n else "validation's images"
    plot = AgreementPlot(metric=metric, images=images)
    steps = manifest.get("steps") or []
    sized = [s for s in steps if s.get("output_bytes")]
    if sized and sized[0].get("stage") == "load":
        plot.points.append(("original (PyTorch), the reference", float(sized[0]["output_bytes"]), 1.0))
    for s in sized[1:-1]:
        rep = s.get("report") or {}
        check = rep.get("check") if isinstance(rep.get("check"), dict) else None
        h = headline(check) if check else None
        if not h or h[0] != metric:
            continue
        used = _image_set((rep.get("data") or {}).get("check_images"))
        count = check.get("distinct_images") or check.get("images")
        if used is not None and used == final_set:
            against = check.get("reference") or "the float model"
            plot.points.append(
                (f"after {s['stage']} (its check, vs {against})", float(s["output_bytes"]), h[1])
            )
        else:
            plot.left_out.append(
                f"after {s['stage']}: {metric_name(metric)} {h[1]:.4f} on its own check's {count or '?'} "
                "images, another set than validation's: not plotted beside it"
            )
    art = manifest.get("artifact") or {}
    if art.get("size_bytes"):
        label = f"{manifest.get('target', '?')} {precision(manifest)} (final, validation)"
        plot.points.append((label, float(art["size_bytes"]), value))
    return plot
