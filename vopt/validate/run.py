"""Validation of a built artifact against the PyTorch original."""

from __future__ import annotations

from typing import Any

import numpy as np

from vopt.core.artifact import Artifact
from vopt.recipe.sections.validate import ValidateSection
from vopt.runtimes.base import Runner, Unavailable
from vopt.validate.gates import evaluate
from vopt.validate.reference import compare_outputs, postprocessed, unordered
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
    from vopt.runtimes.base import Unavailable, run_batches

    original = section.reference == "original"
    reference_artifact = ctx.artifacts.get("load") if original else _exported_source(ctx)
    ref_format = get_format(reference_artifact.format) if reference_artifact is not None else None
    ref_run = (
        ref_format.open(reference_artifact, accurate=True) if ref_format and ref_format.reference else None
    )
    if ref_run is None or isinstance(ref_run, Unavailable):
        report.update(status="no reference", summary="no reference model to compare with")
        if section.gates:
            ctx.warn(f"gates not checked ({', '.join(section.gates)}): no reference model")
        return report
    # Each side reads the images through its own contract (raw pixels for embedded preprocessing).
    ref_images = (
        images
        if reference_artifact.preprocess == artifact.preprocess
        else np.concatenate(
            list(iter_batches(files, reference_artifact.preprocess, batch=8, augment_seed=section.seed))
        )
    )
    with ref_run:  # the model as loaded: PyTorch eager, or the source file on its own runtime
        ref = run_batches(
            ref_run,
            ref_run.info["input_name"],
            [ref_images[i : i + 8] for i in range(0, len(ref_images), 8)],
            static_batch=ref_run.info.get("static_batch"),
        )
    if not ref_format.torch_module:
        report["reference_runtime"] = f"source {ref_format.description} on {ref_format.check_label}"
    static = artifact.io.inputs[0].shape[0] if isinstance(artifact.io.inputs[0].shape[0], int) else None
    batches = [images[i : i + section.batch] for i in range(0, len(images), section.batch)]
    calls = sum(-(-len(b) // static) for b in batches) if static else len(batches)  # a call per static chunk
    with ctx.reporter.bar(f"validate on {run.runtime}", calls) as advance:

        def counted(feeds):
            out = run(feeds)
            advance(1)
            return out

        out = run_batches(counted, artifact.io.inputs[0].name, batches, static_batch=static)
    ref = postprocessed(ref, artifact)
    metrics = compare_outputs(ref, out, skip=unordered(family, artifact), where="validate")
    spread = _output_spread(ref)
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
