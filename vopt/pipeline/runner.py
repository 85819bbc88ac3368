"""The engine: runs the plan step by step, owns the cache, the timing and the output directory."""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import vopt
from vopt.errors import BackendUnavailable, BuildError, GateFailed, VoptError
from vopt.pipeline import interrupt
from vopt.pipeline.artifact import Artifact, LineageEntry, sha256_path
from vopt.pipeline.cache import Cache, step_key
from vopt.pipeline.context import Context
from vopt.pipeline.plan import key_material, make_plan, tool_versions
from vopt.pipeline.preflight import check_inputs
from vopt.pipeline.progress import QuietReporter, Reporter
from vopt.recipe.resolve import LoadedRecipe


@dataclass
class StepRecord:
    stage: str
    key: str
    cached: bool
    seconds: float
    input_sha256: str | None
    output_sha256: str | None
    config: dict[str, Any]
    report: dict[str, Any] = field(default_factory=dict)
    output_bytes: int | None = None  # size of the step's artifact (transform steps), for the report
    # The rest of what the key hashes (vopt version, parent identity, fingerprint, tool versions):
    # sha256 of the canonical JSON of {**key_material, "config": config} is `key`.
    key_material: dict[str, Any] = field(default_factory=dict)


@dataclass
class BuildResult:
    out_dir: Path
    manifest: dict[str, Any]
    artifact: Artifact | None
    gate_failures: list[dict[str, Any]]
    vopt_seconds: float


def build(
    loaded: LoadedRecipe,
    out_root: Path | str = "build",
    *,
    cache: Cache | None = None,
    reporter: Reporter | None = None,
    use_cache: bool = True,
    debug: bool = False,
) -> BuildResult:
    t_start = time.perf_counter()
    recipe = loaded.recipe
    from vopt.models.sources.factory import build_policy

    with build_policy(loaded.path.parent if loaded.path else None, recipe.model.trust):
        return _build(
            loaded, recipe, out_root, cache or Cache(), reporter or QuietReporter(), use_cache, debug, t_start
        )


def _build(loaded, recipe, out_root, cache, reporter, use_cache, debug, t_start) -> BuildResult:
    check_inputs(loaded)  # data folders and gate metrics, before any work (vopt/pipeline/preflight.py)
    steps, target = make_plan(recipe)
    preflight(steps, target)

    artifact: Artifact | None = None
    records: list[StepRecord] = []
    artifacts: dict[str, Artifact] = {}
    reports: dict[str, dict[str, Any]] = {}
    for step in steps:
        parent_sha = artifact.sha256 if artifact else None
        interrupt.check()
        material = key_material(step, artifact.identity() if artifact else None, target)
        key = step_key(material)
        material.pop("config")  # recorded as the step's `config`
        reporter.stage_start(step.name)
        entry = cache.get(key) if use_cache else None
        if entry is not None:
            result, report, seconds, cached = entry.artifact, entry.report, entry.duration_s, True
        else:
            try:
                with cache.lock(key):  # a concurrent build of this step finishes first; then it is a hit
                    entry = cache.get(key) if use_cache else None
                    discarded = _report_discarded(cache, reporter)
                    if entry is None:
                        result, report, seconds = _run_step(
                            step, artifact, key, recipe, target, cache, reporter, artifacts, reports, debug
                        )
                        cached = False
                    else:
                        result, report, seconds, cached = entry.artifact, entry.report, entry.duration_s, True
                if discarded:  # this build's news only: not in the cached report, or every rebuild repeats it
                    report = {**report, "warnings": [*discarded, *report.get("warnings", [])]}
            except BaseException as exc:
                if not isinstance(exc, GateFailed):
                    reporter.abort()  # leave the terminal clean before the error is printed
                    raise
                # A stage's own gate (e.g. quantize with auto_fallback) failed: record why in a manifest-only
                # build directory, so no stale artifact or manifest from an earlier build is left to mislead.
                reporter.stage_end(step.name, cached=False, seconds=0.0, detail="gate failed")
                report = {
                    "status": "gate_failed",
                    "error": exc.message,
                    "lines": exc.lines,
                    "gates": exc.failures,
                }
                records.append(
                    StepRecord(
                        step.name,
                        key,
                        False,
                        0.0,
                        parent_sha,
                        None,
                        step.config.model_dump(mode="json"),
                        report,
                        key_material=material,
                    )
                )
                _write_failed(
                    loaded, target, records, out_root, [{**f, "stage": step.name} for f in exc.failures]
                )
                raise
        reporter.stage_end(step.name, cached=cached, seconds=seconds, detail=_summary(report))
        records.append(
            StepRecord(
                step.name,
                key,
                cached,
                round(seconds, 4),
                parent_sha,
                result.sha256 if step.transforms else parent_sha,
                step.config.model_dump(mode="json"),
                report,
                result.size_bytes() if step.transforms and result is not None else None,
                material,
            )
        )
        reports[step.name] = report
        if step.transforms:
            artifact = result
            artifacts[step.name] = result

    from vopt.pipeline.manifest import gate_failures, make_manifest, write_build_dir

    interrupt.check()
    failures = gate_failures(reports)
    manifest = make_manifest(loaded, target, records, artifact, failures)
    manifest["vopt_seconds"] = round(time.perf_counter() - t_start, 3)  # up to writing the build directory
    out_dir = write_build_dir(Path(out_root) / recipe.name, artifact, manifest)
    elapsed = time.perf_counter() - t_start
    result_obj = BuildResult(out_dir, manifest, artifact, failures, elapsed)
    if failures:
        from vopt.validate.confidence import failure_line

        lines = [failure_line(f) for f in failures]
        raise GateFailed(
            f"{len(failures)} gate{'s' if len(failures) > 1 else ''} failed", lines=lines, failures=failures
        )
    return result_obj


def _write_failed(
    loaded: LoadedRecipe, target: Any, records: list[StepRecord], out_root: Path | str, failures: list
) -> None:
    from vopt.pipeline.manifest import make_manifest, write_build_dir

    manifest = make_manifest(loaded, target, records, None, failures)
    write_build_dir(Path(out_root) / loaded.recipe.name, None, manifest)


def preflight(steps: list, target: Any) -> None:
    """Name what is missing before any expensive work starts."""
    import importlib.util

    ok, why = target.available()
    if not ok:
        raise BackendUnavailable(f"target '{target.name}' is unavailable: {why}")
    for step in steps:
        for module, extra in step.stage.requirements(step.config, target):
            if importlib.util.find_spec(module) is None:
                raise BackendUnavailable(
                    f"the {step.name} step needs '{module}': pip install 'vopt[{extra}]'"
                )


def _report_discarded(cache: Cache, reporter: Reporter) -> list[str]:
    """Damaged cache entries found on the way: said on the terminal and kept in the step's report."""
    warned = cache.take_warnings()
    for message in warned:
        reporter.warn(message)
    return warned


def _run_step(step, artifact, key, recipe, target, cache, reporter, artifacts, reports, debug):
    workdir = cache.new_workdir()
    ctx = Context(
        recipe=recipe,
        target=target,
        workdir=workdir / "payload",
        reporter=reporter,
        artifacts=dict(artifacts),
        reports=dict(reports),
        debug=debug,
    )
    t0 = time.perf_counter()
    try:
        result = step.stage().run(artifact, step.config, ctx)
        seconds = time.perf_counter() - t0
        interrupt.test_pause(step.name, ctx.workdir)
        interrupt.check()  # an interrupt the stage's libraries swallowed still ends the build here
        if step.transforms:
            result.sha256 = sha256_path(result.file)
            lineage = list(artifact.lineage) if artifact else []
            result.lineage = [
                *lineage,
                LineageEntry(stage=step.name, key=key, parent_sha256=artifact.sha256 if artifact else None),
            ]
        else:
            result = artifact
        ctx.report.setdefault("seconds", round(seconds, 4))
        committed = cache.commit(key, workdir, result, ctx.report, seconds)
    except VoptError:
        cache.discard(workdir)
        raise
    except BaseException as exc:  # KeyboardInterrupt included: never leave a half-written entry
        cache.discard(workdir)
        if isinstance(exc, Exception):
            raise BuildError(f"{type(exc).__name__}: {exc}", stage=step.name) from exc
        raise
    return (committed if step.transforms else artifact), ctx.report, seconds


def _summary(report: dict[str, Any]) -> str:
    return str(report.get("summary", ""))


def platform_info() -> dict[str, Any]:
    from vopt.machine import cpu_model

    return {
        "python": platform.python_version(),
        "system": platform.system(),
        "machine": platform.machine(),
        "processor": cpu_model(),
        "cpus": os.cpu_count(),
    }


def versions() -> dict[str, str]:
    names = [
        "torch",
        "transformers",
        "onnx",
        "onnxruntime",
        "openvino",
        "nncf",
        "onnxruntime-qnn",
        "coremltools",
    ]
    return {"vopt": vopt.__version__, **{k: v for k, v in tool_versions(names).items() if v != "absent"}}
