"""The report's content as plain blocks; markdown.py and html.py only lay them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vopt.report import data as d

SENSITIVITY_ROWS = 30  # the rest stays in manifest.json
PLOTS = {
    "latency_vs_batch": "Latency and throughput vs batch size",
    "size_vs_agreement": "Size vs agreement with the reference, one point per artifact",
    "op_time": "Where the time goes: time per op type, by compute precision",
}
PROFILE_ROWS = 15


@dataclass
class Table:
    header: list[str]
    rows: list[list[str]]
    # Row index -> "pass" | "fail", for gate colouring in HTML.
    marks: dict[int, str] = field(default_factory=dict)


@dataclass
class Section:
    title: str
    blocks: list[Any] = field(default_factory=list)  # str (a paragraph), Table, or ("plot", name)


@dataclass
class Document:
    title: str
    facts: list[tuple[str, str]]  # the headline numbers
    warnings: list[str]
    sections: list[Section]


def build_document(manifest: dict[str, Any], plots: dict[str, str]) -> Document:
    """`plots` maps plot name -> file name, for the plots that were drawn."""
    name = (manifest.get("recipe") or {}).get("name", "?")
    sections = [
        _safe(title, fn)
        for title, fn in (
            ("Stages", lambda: _stages(manifest)),
            ("Components", lambda: _components(manifest)),
            ("Quantize check", lambda: _quantize_check(manifest)),
            ("Validation", lambda: _validation(manifest)),
            ("Benchmark", lambda: _benchmark(manifest, plots)),
            ("Where the time goes", lambda: _profile(manifest, plots)),
            ("Size vs agreement", lambda: _agreement_plot(manifest, plots)),
            ("Quantization sensitivity", lambda: _sensitivity(manifest)),
            ("Build", lambda: _about(manifest)),
        )
    ]
    facts = _safe("facts", lambda: _facts(manifest))
    return Document(
        title=f"vopt build: {name}",
        facts=facts if isinstance(facts, list) else [("status", str(manifest.get("status", "?")))],
        warnings=list(manifest.get("warnings") or []),
        sections=[s for s in sections if isinstance(s, Section) and s.blocks],
    )


def _safe(title: str, fn: Any) -> Any:
    """A section that cannot be rendered (an odd or older manifest) says so instead of failing the build."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - the report is the last step of a finished build
        return Section(title, [f"This part of the report could not be rendered: {type(exc).__name__}: {exc}"])


def _facts(m: dict[str, Any]) -> list[tuple[str, str]]:
    art = m.get("artifact") or {}
    facts = [
        ("status", str(m.get("status", "?"))),
        ("target", str(m.get("target", "?"))),
        ("precision", d.precision(m)),
        ("artifact", f"{art.get('file', '-')} ({d.fmt_bytes(art.get('size_bytes'))})"),
    ]
    head = d.agreement(m)
    if head:
        facts.append((d.metric_name(head[0]), d.agreement_text(m) or f"{head[1]:.4f}"))
    quantized = d.quantized_speedup_text(m)
    if quantized:
        speed = d.quantized_speedup(m) or {}
        facts.append((f"vs float on {speed.get('runtime', '?')}", quantized[0]))
    p50, ips, best_batch = d.p50_at_smallest_batch(m)
    if p50 is not None:
        facts.append(("p50 latency", f"{p50:.2f} ms"))
        facts.append(("throughput", f"{ips:.1f} img/s (batch {best_batch})"))
    eager = d.eager_speedup_text(m)
    if eager:
        # A ratio its 95% interval does not support reads "inconclusive (...)", never a bare headline figure.
        facts.append(("vs PyTorch eager", eager[0]))
    return facts


def _stages(m: dict[str, Any]) -> Section:
    rows = [
        [
            r["stage"],
            "yes" if r["cached"] else "no",
            f"{r['seconds']:.2f}" if isinstance(r["seconds"], (int, float)) else "-",
            d.fmt_bytes(r["size"]),
            r["summary"],
        ]
        for r in d.stage_rows(m)
    ]
    total = m.get("vopt_seconds")
    blocks: list[Any] = [Table(["stage", "cached", "seconds", "output size", "summary"], rows)]
    if total is not None:
        blocks.append(f"Whole build: {total:.2f} s.")
    return Section("Stages", blocks)


def _components(m: dict[str, Any]) -> Section | None:
    """An artifact of components: one row per component (what it is, and how far validation found it from its
    reference on the inputs the reference pipeline gave it), and which steps ran or came from the cache."""
    parts = (m.get("artifact") or {}).get("components") or {}
    if not parts:
        return None
    checked = ((m.get("validation") or {}).get("components")) or {}
    cached: dict[str, list[str]] = {}
    for step in m.get("steps") or []:
        for name, rec in ((step.get("key_material") or {}).get("components") or {}).items():
            if not rec.get("skipped"):
                cached.setdefault(name, []).append(
                    f"{step['stage']} {'cached' if rec.get('cached') else 'ran'}"
                )
    rows = [
        [
            name,
            str(p.get("format", "?")),
            str((p.get("meta") or {}).get("precision") or "-"),
            d.fmt_bytes(p.get("size_bytes")),
            d.fmt_num((checked.get(name) or {}).get("worst_cosine"), 6),
            ", ".join(cached.get(name, [])) or "-",
        ]
        for name, p in parts.items()
    ]
    sec = Section(
        "Components", [Table(["component", "format", "precision", "size", "cosine", "steps"], rows)]
    )
    drift = (m.get("validation") or {}).get("first_drift")
    if drift:
        sec.blocks.append(f"First component to drift from its reference: {drift['component']}.")
    # fp16 of a pipeline's components: the nodes whose recorded ranges would overflow (vopt.quant.overflow)
    kept = [
        [name, node, why]
        for step in m.get("steps") or []
        for name, rep in ((step.get("report") or {}).get("components") or {}).items()
        for node, why in (
            ((rep or {}).get("fp16") or (rep or {}).get("scheme_info") or {}).get("kept_fp32_nodes") or {}
        ).items()
    ]
    if kept:
        sec.blocks.append(
            f"fp16: {len(kept)} nodes kept in fp32, and why (a recorded range beyond fp16's, or kept in "
            "float by the recipe or the family):"
        )
        sec.blocks.append(Table(["component", "node", "why"], kept[:40]))
        if len(kept) > 40:
            sec.blocks.append(f"... and {len(kept) - 40} more (manifest.json: the compile step's report).")
    return sec


def _validation(m: dict[str, Any]) -> Section | None:
    v = m.get("validation")
    if not v:
        return None
    sec = Section("Validation")
    files = v.get("image_files") or []
    shown = ", ".join(files[:12]) + (f" and {len(files) - 12} more" if len(files) > 12 else "")
    sec.blocks.append(
        f"Images: {v.get('images', '?')}; {v.get('samples', '?')} samples"
        + (f" from {shown}" if shown else "")
        + "."
    )
    if v.get("status") != "ok":
        sec.blocks.append(f"Not run: {v.get('reason') or v.get('summary') or v.get('status')}.")
        return sec
    against = v.get("reference_runtime") or "the PyTorch model"
    sec.blocks.append(
        f"Artifact run on `{v.get('runtime', '?')}`, compared with {against} "
        f"({v.get('reference', 'original')})."
    )
    gates = v.get("gates") or []
    if gates:
        sec.blocks.append(_gate_table(gates))
    sec.blocks += _evidence(v)
    tm = v.get("task_metrics") or {}
    if tm:
        sec.blocks.append(Table(["task metric", "value"], [[k, d.fmt_num(val)] for k, val in tm.items()]))
    outputs = v.get("metrics") or {}
    if outputs:
        names = ["max_abs_diff", "cosine", "centered_cosine", "sqnr_db"]
        rows = [
            [out, *[d.fmt_num(ms.get(n)) for n in names]]
            for out, ms in outputs.items()
            if isinstance(ms, dict)
        ]
        sec.blocks.append(Table(["output", *names], rows))
        notes = [
            f"`{out}`: {ms['note']}" for out, ms in outputs.items() if isinstance(ms, dict) and ms.get("note")
        ]
        sec.blocks += notes
    browser = (v.get("browser") or {}).get("eps") or {}
    if browser:
        rows = []
        for ep, e in browser.items():
            timing = e.get("timing") or {}
            if e.get("status") == "ok":
                rows.append(
                    [
                        ep,
                        "ok",
                        d.fmt_num(e.get("worst_max_abs_diff")),
                        d.fmt_num(e.get("worst_cosine")),
                        d.fmt_num(timing.get("median_run_ms")),
                    ]
                )
            else:
                rows.append([ep, str(e.get("status")), "-", "-", str(e.get("reason", ""))[:80]])
        sec.blocks.append("In headless Chromium (onnxruntime-web), per execution provider:")
        sec.blocks.append(Table(["EP", "status", "max abs diff", "cosine", "median ms / reason"], rows))
    spread = v.get("reference_spread") or {}
    high = [k for k, s in spread.items() if isinstance(s, (int, float)) and s > 0.99]
    if high:
        sec.blocks.append(
            f"Reference outputs barely vary across images ({', '.join(high)}: mean cosine between "
            "neighbours > 0.99), so raw cosine says little; read centered cosine and the task metrics."
        )
    return sec


def _gate_table(gates: list[dict[str, Any]]) -> Table:
    """Gates with their 95% interval and count where they have one: a pass whose interval straddles the
    threshold says so, since more images could turn it."""
    t = Table(["gate", "value", "needs", "95% interval (n)", "result"], [])
    for i, g in enumerate(gates):
        ci = g.get("ci95")
        interval = f"{d.fmt_num(ci[0])}-{d.fmt_num(ci[1])} (n={g.get('n')})" if ci else "-"
        result = "pass" if g.get("passed") else "FAIL"
        if g.get("straddles"):
            result += " (interval straddles the threshold)"
        if g.get("needs_images"):
            result += f" (needs about {g['needs_images']} images to resolve)"
        if g.get("default"):
            result += " (default gate)"
        t.rows.append(
            [g.get("metric", "?"), d.fmt_num(g.get("value")), str(g.get("condition", "")), interval, result]
        )
        t.marks[i] = "pass" if g.get("passed") else "fail"
    return t


def _evidence(r: dict[str, Any]) -> list[str]:
    """Which images a measurement used, the accuracy against labels, and what random weights mean."""
    out = []
    data = r.get("data") or {}
    if data.get("how"):
        out.append(f"Images: {data['how']}." + (f" Labels: {data['labels']}." if data.get("labels") else ""))
    if r.get("accuracy"):
        out.append(f"Accuracy against the labels: {r['accuracy']}.")
    if r.get("note"):
        out.append(f"Note: {r['note']}.")
    return out


def _quantize_check(m: dict[str, Any]) -> Section | None:
    step = next((s for s in m.get("steps") or [] if s.get("stage") == "quantize"), None)
    rep = (step or {}).get("report") or {}
    if rep.get("components"):  # a pipeline's components, each checked on its own recorded inputs
        return _component_checks(rep["components"])
    check = rep.get("check") or {}
    if check.get("status") != "ok":
        return None
    sec = Section("Quantize check")
    kept = ((rep.get("scheme_info") or {}).get("kept_fp32_nodes")) or {}
    if isinstance(kept, dict) and kept:  # fp16 from recorded ranges: the nodes kept fp32, and why
        sec.blocks.append(f"fp16: {len(kept)} nodes kept in fp32 ({rep['scheme_info'].get('ranges', '')}):")
        sec.blocks.append(Table(["node", "why"], [[n, w] for n, w in list(kept.items())[:40]]))
    sec.blocks.append(
        f"The quantized model against the float model on {check.get('images', '?')} held-out images "
        f"({check.get('runtime', '?')})."
    )
    sec.blocks += _evidence({**check, "data": rep.get("data")})
    if rep.get("gates"):
        sec.blocks.append(_gate_table(rep["gates"]))
    return sec


def _component_checks(parts: dict[str, Any]) -> Section | None:
    rows = []
    for name, rep in parts.items():
        check = (rep or {}).get("check") or {}
        if check.get("status") != "ok":
            continue
        w = check.get("worst") or {}
        gates = check.get("gates") or []
        rows.append(
            [
                name,
                f"{rep.get('scheme')} {rep.get('precision')}",
                d.fmt_num(w.get("cosine"), 6),
                d.fmt_num(w.get("sqnr_db"), 4),
                f"{sum(bool(g.get('passed')) for g in gates)}/{len(gates)}",
                str(check.get("data") or f"{check.get('images', '?')} held-out images"),
            ]
        )
    if not rows:
        return None
    sec = Section("Quantize check")
    sec.blocks.append(
        "Each quantized component against its float self on the inputs it got while the pipeline ran on "
        "held-out prompts (never calibration's, never validation's)."
    )
    sec.blocks.append(Table(["component", "quantized", "cosine", "SQNR dB", "gates", "inputs"], rows))
    return sec


def _benchmark(m: dict[str, Any], plots: dict[str, str]) -> Section | None:
    b = m.get("benchmark")
    if not b:
        return None
    sec = Section("Benchmark")
    if b.get("status") not in (None, "ok"):
        sec.blocks.append(f"Not run: {b.get('reason') or b.get('summary')}.")
        return sec
    counts = b.get("thread_counts") or [b.get("threads")]
    threads = ", ".join(str(t or "runtime default") for t in counts)
    sec.blocks.append(
        f"Runtime `{b.get('runtime', '?')}`, threads: {threads} (of {b.get('cpus', '?')} CPUs, "
        f"load average {d.fmt_num(b.get('load_average'), 3)} at the start), "
        f"warm-up {((b.get('settings') or {}).get('warmup'))}, "
        f"session load {d.fmt_num(b.get('load_ms'), 4)} ms, "
        f"first inference (cold) {d.fmt_num(b.get('cold_ms'), 4)} ms, "
        f"peak RSS {d.fmt_num(b.get('peak_rss_mb'), 4)} MB, "
        f"artifact {d.fmt_bytes(b.get('artifact_bytes'))}."
    )
    sweep = len(counts) > 1
    rows = [
        ([str(r.get("threads") or "default")] if sweep else [])
        + [
            str(r.get("batch")),
            d.fmt_num(r.get("first_ms"), 4),
            d.fmt_num(r.get("p50_ms"), 4),
            d.fmt_num(r.get("p90_ms"), 4),
            d.fmt_num(r.get("p99_ms"), 4),
            d.fmt_num(r.get("throughput_ips"), 5),
            str(r.get("iterations", "-")),
        ]
        for r in d.bench_rows(m)
    ]
    header = ["batch", "first ms", "p50 ms", "p90 ms", "p99 ms", "img/s", "runs"]
    sec.blocks.append(Table(["threads", *header] if sweep else header, rows))
    for base in b.get("baselines") or ([b["baseline"]] if b.get("baseline") else []):
        n = base.get("threads")
        at = f"batch {base.get('batch')}" + (
            (f", {n} thread" + ("s" if n != 1 else "") if n else ", default threads") if sweep else ""
        )
        from vopt.bench.timing import describe_ratio

        shown, supported = describe_ratio(base.get("speedup"), base.get("speedup_ci95"))
        rounds = f" over {base['rounds']} rounds" if base.get("rounds") else ""
        sec.blocks.append(
            f"PyTorch eager at {at}, timed interleaved with the artifact in the same run{rounds}: "
            f"{d.fmt_num(base.get('pytorch_p50_ms'), 4)} ms vs "
            f"{d.fmt_num(base.get('artifact_p50_ms'), 4)} ms p50, "
            + (
                f"a speedup of **{shown}**."
                if supported
                else f"speedup {shown}: its 95% interval does not pin the ratio down (it must exclude 1 and "
                "span at most a factor of 2), so it is no headline figure."
            )
        )
    if b.get("skipped_batch_sizes"):
        sec.blocks.append(
            f"Skipped batch sizes {b['skipped_batch_sizes']}: the artifact's batch axis is static."
        )
    if "latency_vs_batch" in plots:
        sec.blocks.append(("plot", "latency_vs_batch"))
    return sec


def _profile(m: dict[str, Any], plots: dict[str, str]) -> Section | None:
    p = (m.get("benchmark") or {}).get("profile")
    if not p:
        return None
    sec = Section("Where the time goes")
    if p.get("status") != "ok":
        sec.blocks.append(f"Profile not run: {p.get('reason')}.")
        return sec
    mix = ", ".join(
        f"{k} {v['percent']:.1f}% of op time ({v['ops']} ops)" for k, v in p["precision_mix"].items()
    )
    sec.blocks.append(
        f"Per-op times from `{p['runtime']}` at batch {p.get('batch', 1)}, mean of {p['runs']} runs: "
        f"{d.fmt_num(p['op_ms'], 4)} ms in {p['ops']} ops ({d.fmt_num(p['total_ms'], 4)} ms per "
        f"inference around them). Compute precision: {mix}. Devices: "
        + ", ".join(f"{k} ({v} ops)" for k, v in p["devices"].items())
        + "."
    )
    sec.blocks.append(
        Table(
            ["op type", "ms", "% of op time", "nodes", "precision"],
            [
                [
                    r["op_type"],
                    d.fmt_num(r["ms"], 4),
                    f"{r['percent']:.1f}",
                    str(r["count"]),
                    ", ".join(r["precisions"]),
                ]
                for r in p["by_op_type"][:PROFILE_ROWS]
            ],
        )
    )
    sec.blocks.append(
        Table(
            ["slowest nodes", "op", "ms", "precision", "kernel or device"],
            [
                [
                    o["node"],
                    o["op_type"],
                    d.fmt_num(o["ms"], 4),
                    o["precision"],
                    o.get("kernel") or o["device"],
                ]
                for o in p["top"]
            ],
        )
    )
    if "op_time" in plots:
        sec.blocks.append(("plot", "op_time"))
    return sec


def _agreement_plot(m: dict[str, Any], plots: dict[str, str]) -> Section | None:
    if "size_vs_agreement" not in plots:
        return None
    agree = d.agreement_points(m)
    blocks: list[Any] = [
        f"Every point was measured on the same images, {agree.images}; the original model is the reference.",
        ("plot", "size_vs_agreement"),
    ]
    blocks += [f"Not plotted: {line}." for line in agree.left_out]
    return Section("Size vs agreement", blocks)


def _sensitivity(m: dict[str, Any]) -> Section | None:
    table = d.sensitivity(m)
    if table is None:
        return None
    cols, rows = table
    blocks: list[Any] = [
        "Layers ranked by how much quantizing them moves the output, as the quantize step measured it.",
        Table(cols, [[d.fmt_num(v, 5) for v in r] for r in rows[:SENSITIVITY_ROWS]]),
    ]
    if len(rows) > SENSITIVITY_ROWS:
        blocks.append(
            f"{len(rows) - SENSITIVITY_ROWS} more rows in manifest.json (the quantize step's report)."
        )
    return Section("Quantization sensitivity", blocks)


def _about(m: dict[str, Any]) -> Section:
    plat = m.get("platform") or {}
    tools = m.get("tools") or {}
    recipe = m.get("recipe") or {}
    return Section(
        "Build",
        [
            f"Recipe `{recipe.get('file') or '?'}`, created {m.get('created', '?')}, "
            f"vopt {m.get('vopt_version', '?')}.",
            f"Machine: {plat.get('system', '?')} {plat.get('machine', '')}, {plat.get('cpus', '?')} CPUs, "
            f"Python {plat.get('python', '?')}.",
            "Tools: " + ", ".join(f"{k} {v}" for k, v in tools.items()) + ".",
        ],
    )
