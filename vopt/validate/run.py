"""Validation of a built artifact against the PyTorch original."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from vopt.core.artifact import Artifact
from vopt.recipe.sections.validate import ValidateSection
from vopt.runtimes.base import Runner, Unavailable, fixed_batch, run_batches
from vopt.validate.gates import evaluate
from vopt.validate.reference import postprocessed, unordered
from vopt.validate.reference_memo import ReferenceMemo
from vopt.validate.sequence import sequence_line
from vopt.validate.tasks import task_metrics


def validate_artifact(
    artifact: Artifact,
    section: ValidateSection,
    compile_cfg: Any,
    ctx: Any,
    heldout: dict[str, Any] | None = None,
    label_data: str | list[str] | None = None,
) -> dict[str, Any]:
    """`compile_cfg` is the target's typed Config (the recipe's `compile:` section): its runner's settings.
    `heldout`: the images validate may use, held out from calibration (vopt.quant.heldout)."""
    from vopt.datasets.images import ImageStats, describe, iter_batches, list_images, sample_files
    from vopt.datasets.split import paths
    from vopt.models.resolve import family_of

    family = family_of(artifact)
    files = sample_files(paths(heldout, "check") or list_images(section.data), section.samples, section.seed)
    stats = ImageStats()
    batches = list(iter_batches(files, artifact.preprocess, batch=8, augment_seed=section.seed, stats=stats))
    if not batches:
        from vopt.errors import RecipeError

        raise RecipeError(f"validate.data: no readable images in {describe(section.data)}")
    images = np.concatenate(batches)
    report: dict[str, Any] = {
        "images": describe(section.data),
        "samples": len(images),
        "image_files": sorted({f.name for f in files} - set(stats.skipped)),
        **stats.report(),
        "task": artifact.meta.get("task"),
    }
    for note in stats.warnings("validate"):
        ctx.warn(note)
    _record_data(report, files, heldout, ctx)
    if artifact.components:  # each component, and the components together (vopt.validate.components)
        from vopt.validate.components import validate_components

        reference = ctx.artifacts.get("load") if section.reference == "original" else _exported_source(ctx)
        return validate_components(artifact, section, compile_cfg, ctx, images, report, reference)
    run = ctx.target.runner(artifact, compile_cfg)
    if isinstance(run, Unavailable):
        report.update(status="not run", reason=run.reason, summary=f"not run: {run.reason}")
        ctx.warn(f"artifact not executed: {run.reason}")
        if section.gates:
            ctx.warn(f"gates not checked ({', '.join(section.gates)}): the artifact could not run here")
        return report
    with run:  # released even when the reference or a comparison fails
        return _compare(run, artifact, section, ctx, family, images, report, files, label_data)


def _compare(
    run: Runner,
    artifact: Artifact,
    section: ValidateSection,
    ctx: Any,
    family: Any,
    images: np.ndarray,
    report: dict[str, Any],
    files: list[Any],
    label_data: Any = None,
) -> dict[str, Any]:
    from vopt.datasets.images import iter_batches
    from vopt.registry import get_format

    original = section.reference == "original"
    reference_artifact = ctx.artifacts.get("load") if original else _exported_source(ctx)
    ref_format = get_format(reference_artifact.format) if reference_artifact is not None else None
    if ref_format is None or not ref_format.reference:
        return _no_reference(report, section, ctx)
    # Each side reads the images through its own contract (raw pixels for embedded preprocessing).
    ref_images = (
        images
        if reference_artifact.preprocess == artifact.preprocess
        else np.concatenate(
            list(iter_batches(files, reference_artifact.preprocess, batch=8, augment_seed=section.seed))
        )
    )
    if not ref_format.torch_module:
        report["reference_runtime"] = f"source {ref_format.description} on {ref_format.check_label}"
    static = fixed_batch(artifact.io.inputs[0].shape[0])  # -1 or 0 is open, never a step of -1
    batches = [images[i : i + section.batch] for i in range(0, len(images), section.batch)]
    calls = sum(-(-len(b) // static) for b in batches) if static else len(batches)  # a call per static chunk
    # A browser check takes every output at once; otherwise a large output is compared chunk by chunk.
    keep = None if section.runtime == "browser" else KEEP_ELEMENTS
    streamed = _Streamed(keep)
    memo = ReferenceMemo(ctx.cache_root, reference_artifact, {"accurate": True, "batch": 8})
    with contextlib.ExitStack() as opened, ctx.reporter.bar(f"validate on {run.runtime}", calls) as advance:
        reference = _Reference(ref_format, reference_artifact, opened)

        def counted(feeds):
            out = run(feeds)
            advance(1)
            return out

        i, chunk = 0, section.batch  # the first chunk is one batch; then as many as CHUNK_BYTES holds
        while i < len(images):  # the reference and the artifact on one chunk of images
            part = ref_images[i : i + chunk]
            try:
                ref_part = memo.outputs(part, lambda part=part: reference(part))
            except _NoReference:
                return _no_reference(report, section, ctx)
            out_part = run_batches(
                counted,
                artifact.io.inputs[0].name,
                [images[j : j + section.batch] for j in range(i, min(i + chunk, len(images)), section.batch)],
                static_batch=static,
            )
            streamed.add(postprocessed(ref_part, artifact), out_part)
            i += chunk
            per_image = sum(v[0].nbytes for v in (*ref_part.values(), *out_part.values()) if np.ndim(v))
            fits = max(1, CHUNK_BYTES // max(per_image, 1)) // section.batch * section.batch
            chunk = min(max(section.batch, fits), section.batch * max(1, -(-CHUNK_IMAGES // section.batch)))
    ref, out = streamed.kept()
    if summary := memo.summary():
        report["reference_outputs"] = summary
    metrics = streamed.compare(unordered(family, artifact))
    spread = {**_output_spread({n: v for n, v in ref.items() if n not in streamed.parity}), **streamed.spread}
    if streamed.parity:
        report["streamed_outputs"] = {
            n: f"{streamed.values[n]:,} values per image: compared chunk by chunk, not kept"
            for n in streamed.parity
        }
    report.update(
        status="ok",
        runtime=run.runtime,
        runtime_info=run.info,
        metrics=metrics["outputs"],
        reference=section.reference,
    )
    report["reference_spread"] = spread
    tm, notes = task_metrics(artifact.meta.get("task"), family, ref, out, section.score_threshold)
    report["task_metrics"] = tm
    for note in notes:
        ctx.warn(note)
    report["gates"] = _gates(report, section, artifact, ref, out, files, tm, metrics, ctx, label_data)
    report["summary"] = _summary(run.runtime, metrics, tm, report["gates"])
    if report.get("accuracy"):
        report["summary"] += f"; {report['accuracy']}"
    if section.runtime == "browser":  # per-EP results in headless Chromium (webgpu, wasm, webnn)
        from vopt.validate.browser import validate_in_browser

        report["browser"] = validate_in_browser(artifact, images, ref, section, family)
        report["gates"] += report["browser"].pop("gates")
        report["summary"] += f"; browser: {report['browser']['summary']}"
    return report


class _NoReference(Exception):
    pass


class _Reference:
    """The reference model, opened on the first images whose outputs the memo does not hold: opening a
    PyTorch original imports transformers and rebuilds the module, most of a rebuild's validation once the
    outputs come from the cache."""

    def __init__(self, fmt: Any, artifact: Artifact, stack: contextlib.ExitStack):
        self.fmt, self.artifact, self.stack = fmt, artifact, stack
        self.run: Runner | None = None

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        if self.run is None:
            opened = self.fmt.open(self.artifact, accurate=True)
            if isinstance(opened, Unavailable):
                raise _NoReference
            self.run = self.stack.enter_context(opened)
        return run_batches(
            self.run,
            self.run.info["input_name"],
            [images[j : j + 8] for j in range(0, len(images), 8)],
            static_batch=self.run.info.get("static_batch"),
        )


def _no_reference(report: dict[str, Any], section: ValidateSection, ctx: Any) -> dict[str, Any]:
    report.update(status="no reference", summary="no reference model to compare with")
    if section.gates:
        ctx.warn(f"gates not checked ({', '.join(section.gates)}): no reference model")
    return report


# An output with more values per image than this (a segmentation map, a feature map) is compared chunk by
# chunk (StreamingParity, exact) and not kept for the whole set: 500 images of a 64 x 128 x 128 map were 2 GB
# per side (20 GB at peak with the float64 copies) where the run now holds one chunk. A [B, C, H, W] output
# keeps its label map (argmax over C, 2 bytes a pixel) for mIoU.
KEEP_ELEMENTS = 65_536
CHUNK_IMAGES = 32  # images run per chunk, at most
CHUNK_BYTES = 64 << 20  # and at most this many bytes of both sides' outputs per chunk (at least one batch)


class _Streamed:
    """The outputs of both sides, chunk by chunk: small ones kept whole, large ones reduced as they come."""

    def __init__(self, keep: int | None):
        from vopt.validate.metrics import StreamingParity

        self.keep = keep
        self.make = StreamingParity
        self.ref: dict[str, list[np.ndarray]] = {}
        self.out: dict[str, list[np.ndarray]] = {}
        self.parity: dict[str, Any] = {}
        self.values: dict[str, int] = {}
        self.labels: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
        self.spread: dict[str, float] = {}
        self._spread_sum: dict[str, tuple[float, int, np.ndarray | None]] = {}

    def add(self, ref: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> None:
        from vopt.validate.metrics import cosine

        for name, r in ref.items():
            r = np.asarray(r)
            per_image = int(np.prod(r.shape[1:])) if r.ndim else 1
            large = self.keep is not None and per_image > self.keep and name in out and r.ndim >= 1
            if not large and name not in self.parity:
                self.ref.setdefault(name, []).append(r)
                if name in out:
                    self.out.setdefault(name, []).append(np.asarray(out[name]))
                continue
            o = np.asarray(out[name])
            self.parity.setdefault(name, self.make()).add(r, o)
            self.values[name] = per_image
            if r.ndim == 4 and o.shape == r.shape and r.shape[1] < 65_536:  # [B, C, H, W]: maps for mIoU
                maps = self.labels.setdefault(name, ([], []))
                maps[0].append(r.argmax(axis=1).astype(np.uint16))
                maps[1].append(o.argmax(axis=1).astype(np.uint16))
            total, count, last = self._spread_sum.get(name, (0.0, 0, None))
            for sample in r:  # mean cosine between consecutive images, as _output_spread
                if last is not None:
                    total, count = total + cosine(last, sample), count + 1
                last = sample
            self._spread_sum[name] = (total, count, np.array(last, copy=True) if last is not None else None)
            self.spread = {n: t / c for n, (t, c, _) in self._spread_sum.items() if c}

    def kept(self) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        """The outputs the task metrics and gates read: small ones whole, large [B, C, H, W] ones as label
        maps ([B, H, W], what the segmentation metrics compute from them)."""
        ref = {n: np.concatenate(v) for n, v in self.ref.items()}
        out = {n: np.concatenate(v) for n, v in self.out.items()}
        for name, (r, o) in self.labels.items():
            ref[name], out[name] = np.concatenate(r), np.concatenate(o)
        return ref, out

    def compare(self, skip: tuple[str, ...]) -> dict[str, Any]:
        """compare_outputs' result: the kept outputs compared whole, the large ones from their sums."""
        from vopt.validate.reference import compare_outputs, not_finite, require_compared

        ref = {n: np.concatenate(v) for n, v in self.ref.items()}
        out = {n: np.concatenate(v) for n, v in self.out.items()}
        shared = [n for n in ref if n in out and np.size(ref[n]) and np.size(out[n])]
        if not shared and not self.parity:
            require_compared(ref, out, "validate")
        bad = [
            f"{side} output {n}: {p.nonfinite[side]} of {p.size[side]} values are NaN or inf"
            for side in ("reference", "artifact")
            for n, p in self.parity.items()
            if p.nonfinite[side]
        ]
        if bad:
            not_finite(bad, "validate")
        result = compare_outputs(ref, out, skip=skip, where="validate") if shared else {"outputs": {}}
        for name, acc in self.parity.items():
            result["outputs"][name] = {**acc.metrics(), "streamed": True}
        checked = list(result["outputs"].values())
        result["worst_cosine"] = min((m["cosine"] for m in checked), default=1.0)
        result["worst_max_abs_diff"] = max((m["max_abs_diff"] for m in checked), default=0.0)
        return result


def _record_data(report: dict[str, Any], files: list[Any], heldout: dict[str, Any] | None, ctx: Any) -> None:
    """Which images validate used (names + content hashes), and how they were held out from calibration."""
    from vopt.datasets.split import manifest_list

    report["data"] = {
        "how": heldout["how"] if heldout else "no image calibration in this build: nothing to hold out",
        "split": heldout.get("split") if heldout else None,
        "validate_images": manifest_list(files),
    }
    for w in (heldout or {}).get("warnings", []):
        ctx.warn(w)


def _gates(
    report: dict[str, Any],
    section: ValidateSection,
    artifact: Artifact,
    ref: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    files: list[Any],
    tm: dict[str, Any],
    metrics: dict[str, Any],
    ctx: Any,
    label_data: Any = None,
) -> list:
    """The recipe's gates and the task's defaults, with accuracy against labels and 95% intervals of every
    rate."""
    from vopt.datasets.labels import find_labels
    from vopt.validate.accuracy import RANDOM_NOTE, accuracy_line, evidence
    from vopt.validate.confidence import gate_notes
    from vopt.validate.defaults import gates_for

    task = artifact.meta.get("task")
    data = label_data
    if task == "object-detection":  # boxes: YOLO txt or COCO JSON, mAP through pycocotools
        from vopt.datasets.detection_labels import find_detection_labels
        from vopt.models.resolve import family_of
        from vopt.validate.detection import detection_evidence

        labels = find_detection_labels(data, files, list(artifact.preprocess.size), section.labels)
        extra, intervals = detection_evidence(family_of(artifact), ref, out, files, labels)
    else:
        labels = find_labels(data, files, section.labels, "validate.labels")
        extra, intervals = evidence(task, ref, out, files, labels)
    tm.update(extra)
    if intervals:
        report["intervals"] = intervals
    report["data"]["labels"] = labels.source if labels is not None else None
    if "top1_drop" in tm:
        report["accuracy"] = accuracy_line(tm, intervals)
    if "map50_95_drop" in tm:
        from vopt.validate.detection_map import map_line

        report["accuracy"] = map_line(tm, intervals)
    if artifact.meta.get("random_weights"):
        report["note"] = RANDOM_NOTE
    all_gates, defaults = gates_for(
        task,
        section.gates,
        section.default_gates,
        bool(artifact.meta.get("random_weights")),
        outputs=list(out),
    )
    if tm.get("reference_detections") == 0:
        all_gates = {k: v for k, v in all_gates.items() if not (k == "box_agreement" and k in defaults)}
    gates = evaluate(
        all_gates, {"outputs": metrics["outputs"], **tm, "intervals": intervals}, section.gate_mode, defaults
    )
    for note in gate_notes(
        [g for g in gates if not (g.get("default") and not g.get("straddles"))], "validate"
    ):
        ctx.warn(note)
    return gates


def _summary(runtime: str, metrics: dict[str, Any], tm: dict[str, Any], gates: list[dict[str, Any]]) -> str:
    parts = [f"{runtime}: cosine {metrics['worst_cosine']:.6f}"]
    cc = [m["centered_cosine"] for m in metrics["outputs"].values() if m.get("centered_cosine") is not None]
    if cc:
        parts.append(f"centered {min(cc):.6f}")
    for name in ("top1_agreement", "box_agreement", "miou"):
        if name in tm:
            parts.append(f"{name.replace('_agreement', '')} {tm[name]:.3f}")
    if "position_agreement" in tm:  # [B, T, C] sequence outputs (vopt.validate.sequence)
        parts.append(sequence_line(tm))
    if gates:
        passed = sum(g["passed"] for g in gates)
        parts.append(f"gates {passed}/{len(gates)} passed")
    return ", ".join(parts)


def _exported_source(ctx: Any) -> Artifact | None:
    """The model export started from: the last of prune, fuse and load that can stand as a reference."""
    from vopt.registry import get_format

    for name in ("prune", "fuse", "load"):
        art = ctx.artifacts.get(name)
        if art is not None and all(
            get_format(a.format).reference for a in (art.components.values() or [art])
        ):
            return art
    return None


def _output_spread(ref: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean cosine between outputs for different images: near 1 means outputs barely depend on input."""
    from vopt.validate.metrics import cosine

    spread = {}
    for name, r in ref.items():
        if len(r) < 2:
            continue
        sims = [cosine(r[i], r[i + 1]) for i in range(len(r) - 1)]
        spread[name] = float(np.mean(sims))
    return spread
