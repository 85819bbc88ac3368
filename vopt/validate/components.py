"""Validation of an artifact of components: each component against its reference on the inputs it really
sees in the reference run, and the components together (the family's pipeline: a chain by default, a
diffusion pipeline's denoising loop) against the reference pipeline. Gates hold on the pipeline's final
outputs; when one fails, the report names the component that drifts first."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from vopt.core.artifact import Artifact
from vopt.recipe.sections.validate import ValidateSection
from vopt.runtimes.base import Runner, Unavailable, fixed_batch, run_feeds
from vopt.validate.gates import evaluate
from vopt.validate.reference import compare_outputs
from vopt.validate.tasks import task_metrics

# A component whose worst cosine against its reference is below this is where drift starts (the report's
# `first_drift`): fp32 export and compile stay above 0.9999; quantized components fall below.
DRIFT_COSINE = 0.9999


class ComponentRun:
    """A component on a runner: named inputs in, named outputs out, whole batches (split and padded to the
    runner's static batch)."""

    def __init__(self, runner: Runner, artifact: Artifact):
        self.runner = runner
        self.inputs = [t.name for t in artifact.io.inputs]
        self.outputs = [t.name for t in artifact.io.outputs]
        # a runner that does not say (QNN's) has the batch the artifact's first input was fixed to
        first = artifact.io.inputs[0].shape[0] if artifact.io.inputs and artifact.io.inputs[0].shape else None
        self.static_batch = fixed_batch(runner.info.get("static_batch")) or fixed_batch(first)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = run_feeds(self.runner, feeds, self.static_batch)
        if not self.outputs:
            self.outputs = list(out)
        return out


def validate_components(
    artifact: Artifact,
    section: ValidateSection,
    compile_cfg: Any,
    ctx: Any,
    images: np.ndarray,
    report: dict[str, Any],
    reference: Artifact | None,
) -> dict[str, Any]:
    """`images`: the validation images through the artifact's contract; `reference`: the model of components
    the build started from (its load step, or what export started from)."""
    from vopt.models.resolve import family_of
    from vopt.registry import get_format

    names = list(artifact.components)
    if reference is None or set(reference.components) != set(names):
        report.update(
            status="no reference", summary="no reference model of the same components to compare with"
        )
        return report
    family = family_of(artifact)
    with contextlib.ExitStack() as stack:
        ref_calls: dict[str, ComponentRun] = {}
        art_calls: dict[str, ComponentRun] = {}
        for name in names:
            ref_comp, comp = reference.components[name], artifact.components[name]
            ref_run = get_format(ref_comp.format).open(ref_comp, accurate=True)
            run = ctx.target.runner(comp, compile_cfg)
            for which, r in (("reference", ref_run), ("artifact", run)):
                if isinstance(r, Unavailable):
                    reason = f"{name} ({which}): {r.reason}"
                    report.update(status="not run", reason=reason, summary=f"not run: {reason}")
                    ctx.warn(f"components not executed: {reason}")
                    return report
            ref_calls[name] = ComponentRun(stack.enter_context(ref_run), ref_comp)
            art_calls[name] = ComponentRun(stack.enter_context(run), comp)
        settings = pipeline_settings(section, artifact)
        with ctx.reporter.bar(
            f"validate {len(names)} components on {next(iter(art_calls.values())).runner.runtime}", 3
        ) as advance:
            ref_out, ref_seen = family.run_components(ref_calls, images, settings)
            advance(1)
            art_out, _ = family.run_components(art_calls, images, settings)
            advance(1)
            # Each component on exactly what it saw in the reference run: its own drift, not its inputs'.
            parts: dict[str, dict[str, Any]] = {}
            for name in names:
                feeds, ref_outputs = ref_seen[name]
                metrics = compare_outputs(ref_outputs, art_calls[name](feeds))
                parts[name] = {
                    "runtime": art_calls[name].runner.runtime,
                    "metrics": metrics["outputs"],
                    "worst_cosine": metrics["worst_cosine"],
                }
            advance(1)
    pipeline = compare_outputs(ref_out, art_out)
    task = artifact.meta.get("task")
    tm, notes = task_metrics(task, family, ref_out, art_out, section.score_threshold)
    for note in notes:
        ctx.warn(note)
    from vopt.validate.defaults import DEFAULT_GATES, gates_for

    integer = integer_components(artifact)
    all_gates, defaults = gates_for(
        f"{task}-int8" if integer and f"{task}-int8" in DEFAULT_GATES else task,
        section.gates,
        section.default_gates,
        bool(artifact.meta.get("random_weights")),
    )
    gates = evaluate(all_gates, {"outputs": pipeline["outputs"], **tm}, section.gate_mode, defaults)
    drift = next((n for n in names if parts[n]["worst_cosine"] < DRIFT_COSINE), None)
    report.update(
        status="ok",
        runtime=parts[names[-1]]["runtime"],
        reference=section.reference,
        metrics=pipeline["outputs"],
        task_metrics=tm,
        components=parts,
        pipeline={
            "components": names,
            "how": type(family).run_components.__qualname__,
            **({"settings": settings["pipeline"]} if settings["pipeline"] else {}),
        },
        first_drift={"component": drift, "worst_cosine": parts[drift]["worst_cosine"]} if drift else None,
        gates=gates,
    )
    if integer:  # the default gates are the task's integer table (vopt.validate.defaults)
        report["quantized_components"] = integer
    summary = [f"pipeline of {len(names)}: cosine {pipeline['worst_cosine']:.6f}"]
    if "psnr_db" in tm:  # a pipeline that makes images
        summary[0] += f", PSNR {tm['psnr_db']:.1f} dB, SSIM {tm['ssim']:.4f}"
    summary += [f"{n} {parts[n]['worst_cosine']:.6f}" for n in names]
    if gates:
        summary.append(f"gates {sum(g['passed'] for g in gates)}/{len(gates)} passed")
    report["summary"] = ", ".join(summary)
    if drift and not all(g["passed"] for g in gates):
        ctx.warn(
            f"the first component to drift is {drift} (cosine {parts[drift]['worst_cosine']:.6f} against its "
            "reference, on the inputs the reference pipeline gave it)"
        )
    return report


def integer_components(artifact: Artifact) -> dict[str, str]:
    """The components quantized to an integer precision (name -> precision)."""
    from vopt.validate.defaults import INTEGER_PRECISIONS

    found = {}
    for name, comp in artifact.components.items():
        precision = ((comp.meta or {}).get("quantized") or {}).get("precision")
        if precision in INTEGER_PRECISIONS:
            found[name] = str(precision)
    return found


def pipeline_settings(section: ValidateSection, artifact: Artifact) -> dict[str, Any]:
    """What a family's run_components reads besides the calls: the recipe's `validate.pipeline` (None when
    the recipe has none) and the pipeline's own facts from the load step (`meta["pipeline"]`)."""
    check = section.pipeline.model_dump(mode="json") if section.pipeline is not None else None
    return {"pipeline": check, "model": dict(artifact.meta.get("pipeline") or {})}
