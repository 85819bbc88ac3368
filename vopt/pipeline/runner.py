"""The engine: runs the plan step by step, owns the cache, the timing and the output directory."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.core import interrupt
from vopt.core.artifact import Artifact, LineageEntry, sha256_path
from vopt.core.cache import Cache, step_key
from vopt.core.context import Context
from vopt.core.progress import QuietReporter, Reporter
from vopt.core.results import StepRecord
from vopt.errors import BackendUnavailable, BuildError, GateFailed, VoptError
from vopt.pipeline.plan import Step, key_material, make_plan
from vopt.pipeline.preflight import check_inputs
from vopt.recipe.resolve import LoadedRecipe


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
    keep_going: bool = False,
) -> BuildResult:
    """`keep_going`: a transform step whose own gates fail (the quantize check) does not stop the build, so
    the later steps still run and the report has everything; the build still fails (exit 3) at the end."""
    t_start = time.perf_counter()
    recipe = loaded.recipe
    from vopt.models.sources.factory import build_policy

    with build_policy(loaded.path.parent if loaded.path else None, recipe.model.trust, recipe.model):
        env = _Env(recipe, None, cache or Cache(), reporter or QuietReporter(), use_cache, debug, keep_going)
        return _build(loaded, recipe, out_root, env, t_start)


@dataclass
class _Env:
    """What every step of one build shares."""

    recipe: Any
    target: Any
    cache: Cache
    reporter: Reporter
    use_cache: bool
    debug: bool
    keep_going: bool = False  # a transform step's failed gates do not stop the build (build())
    artifacts: dict[str, Artifact] = field(default_factory=dict)  # transform steps' results, by stage
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)


def _build(loaded, recipe, out_root, env: _Env, t_start) -> BuildResult:
    check_inputs(loaded)  # data folders and gate metrics, before any work (vopt/pipeline/preflight.py)
    steps, target = make_plan(recipe)
    preflight(steps, target)

    env.target = target
    reporter = env.reporter
    artifact: Artifact | None = None
    records: list[StepRecord] = []
    for step in steps:
        interrupt.check()
        reporter.stage_start(step.name)
        try:
            if artifact is not None and artifact.components and step.transforms:
                result, record = _per_component(step, artifact, env)
            else:
                result, record = _whole(step, artifact, env)
        except GateFailed as exc:
            # A stage's own gate (e.g. quantize with auto_fallback) failed: record why in a manifest-only
            # build directory, so no stale artifact or manifest from an earlier build is left to mislead.
            reporter.stage_end(step.name, cached=False, seconds=0.0, detail="gate failed")
            material = key_material(step, artifact.identity() if artifact else None, target)
            key = step_key(material)
            material.pop("config")
            report = {
                "status": "gate_failed",
                "error": exc.message,
                "lines": exc.lines,
                "gates": exc.failures,
            }
            records.append(
                StepRecord(
                    stage=step.name,
                    key=key,
                    cached=False,
                    seconds=0.0,
                    input_sha256=artifact.sha256 if artifact else None,
                    output_sha256=None,
                    config=step.config.model_dump(mode="json"),
                    report=report,
                    key_material=material,
                )
            )
            _write_failed(
                loaded, target, records, out_root, [{**f, "stage": step.name} for f in exc.failures]
            )
            raise
        except BaseException:
            reporter.abort()  # leave the terminal clean before the error is printed
            raise
        from vopt.pipeline.manifest import gate_failures

        stop = [] if env.keep_going or not step.transforms else gate_failures({step.name: record.report})
        detail = _summary(record.report)
        reporter.stage_end(
            step.name,
            cached=record.cached,
            seconds=record.seconds,
            detail=f"GATE FAILED: {detail}" if stop else detail,
        )
        records.append(record)
        env.reports[step.name] = record.report
        if stop:  # fail at the step that failed: no minutes of later steps on an artifact already refused
            _stop_at(step.name, stop, loaded, target, records, out_root)
        if step.transforms:
            artifact = result
            env.artifacts[step.name] = result
            if artifact is not None and artifact.components:
                _check_component_sections(recipe, artifact)

    from vopt.pipeline.manifest import gate_failures, make_manifest, write_build_dir

    interrupt.check()
    failures = gate_failures(env.reports)
    manifest = make_manifest(loaded, target, records, artifact, failures)
    manifest.vopt_seconds = round(time.perf_counter() - t_start, 3)  # up to writing the build directory
    out_dir = write_build_dir(Path(out_root) / recipe.name, artifact, manifest)
    elapsed = time.perf_counter() - t_start
    result_obj = BuildResult(out_dir, manifest.to_json(), artifact, failures, elapsed)
    if failures:
        from vopt.validate.confidence import failure_line

        lines = [failure_line(f) for f in failures]
        raise GateFailed(
            f"{len(failures)} gate{'s' if len(failures) > 1 else ''} failed", lines=lines, failures=failures
        )
    return result_obj


def _cached_run(step: Step, parent: Artifact | None, key: str, env: _Env, component: str | None = None):
    """(result, report, seconds, cached) for one step on one input: from the cache, or run under the key's
    lock (a concurrent build of the same step finishes first; then it is a hit)."""
    from vopt.models.sources.factory import untrusted_reason

    cache = env.cache
    entry = cache.get(key, untrusted_reason) if env.use_cache else None
    if entry is not None:
        return entry.artifact, entry.report, entry.duration_s, True
    with cache.lock(key):
        entry = cache.get(key, untrusted_reason) if env.use_cache else None
        discarded = _report_discarded(cache, env.reporter)
        if entry is None:
            result, report, seconds = _run_step(step, parent, key, env, component)
            cached = False
        else:
            result, report, seconds, cached = entry.artifact, entry.report, entry.duration_s, True
    if discarded:  # this build's news only: not in the cached report, or every rebuild repeats it
        report = {**report, "warnings": [*discarded, *report.get("warnings", [])]}
    return result, report, seconds, cached


def _whole(step: Step, artifact: Artifact | None, env: _Env) -> tuple[Artifact | None, StepRecord]:
    parent_sha = artifact.sha256 if artifact else None
    material = key_material(step, artifact.identity() if artifact else None, env.target)
    key = step_key(material)
    material.pop("config")  # recorded as the step's `config`
    result, report, seconds, cached = _cached_run(step, artifact, key, env)
    record = StepRecord(
        stage=step.name,
        key=key,
        cached=cached,
        seconds=round(seconds, 4),
        input_sha256=parent_sha,
        output_sha256=result.sha256 if step.transforms else parent_sha,
        config=step.config.model_dump(mode="json"),
        report=report,
        output_bytes=result.size_bytes() if step.transforms and result is not None else None,
        key_material=material,
    )
    return result, record


def _per_component(step: Step, artifact: Artifact, env: _Env) -> tuple[Artifact, StepRecord]:
    """A transform step on an artifact of components: each component is its own step, with its own config
    (the recipe's `components.<name>` overrides applied) and its own cache key, so changing one component's
    settings re-runs that component only. A stage that does not apply to a component passes it through."""
    from vopt.formats.components import compose
    from vopt.recipe.components import component_recipe

    results: dict[str, Artifact] = {}
    parts: dict[str, dict[str, Any]] = {}
    for name, comp in artifact.components.items():
        interrupt.check()
        config = step.stage.configure(component_recipe(env.recipe, name), env.target)
        if config is None:
            results[name] = comp
            parts[name] = {"skipped": True, "sha256": comp.sha256}
            continue
        comp_step = Step(step.name, step.stage, config)
        material = {**key_material(comp_step, comp.identity(), env.target), "component": name}
        key = step_key(material)
        material.pop("config")
        result, report, seconds, cached = _cached_run(comp_step, comp, key, env, component=name)
        results[name] = result
        parts[name] = {
            "key": key,
            "cached": cached,
            "seconds": round(seconds, 4),
            "input_sha256": comp.sha256,
            "output_sha256": result.sha256,
            "output_bytes": result.size_bytes(),
            "config": config.model_dump(mode="json"),
            "report": report,
            "key_material": material,
        }
    composite = compose(artifact, results, step.name)
    ran = [p for p in parts.values() if not p.get("skipped")]
    summary = "; ".join(
        f"{n}: {'skipped' if p.get('skipped') else (p['report'].get('summary') or 'done')}"
        for n, p in parts.items()
    )
    report: dict[str, Any] = {
        "summary": summary,
        "components": {n: p.get("report", {"skipped": True}) for n, p in parts.items()},
        "warnings": [
            f"{n}: {w}" for n, p in parts.items() for w in (p.get("report") or {}).get("warnings", [])
        ],
    }
    # each component's own gates (its quantize check), named by component: a failed one stops the build here
    gates = [
        {**g, "metric": f"{n}.{g['metric']}", "component": n}
        for n, p in parts.items()
        for g in (p.get("report") or {}).get("gates", [])
    ]
    if gates:
        report["gates"] = gates
    record = StepRecord(
        stage=step.name,
        key=composite.lineage[-1].key,
        cached=bool(ran) and all(p["cached"] for p in ran),
        seconds=round(sum(p["seconds"] for p in ran), 4),
        input_sha256=artifact.sha256,
        output_sha256=composite.sha256,
        config=step.config.model_dump(mode="json"),
        report=report,
        output_bytes=composite.size_bytes(),
        key_material={
            "components": {n: {k: v for k, v in p.items() if k != "report"} for n, p in parts.items()}
        },
    )
    return composite, record


def _stop_at(
    stage: str, failures: list[dict[str, Any]], loaded: LoadedRecipe, target: Any, records, out_root
) -> None:
    """A transform step's own gates failed (the quantize check): the build ends there, exit 3, with a
    manifest-only build directory; `--keep-going` runs the rest instead and fails at the end."""
    from vopt.validate.confidence import failure_line

    _write_failed(loaded, target, records, out_root, failures)
    lines = [failure_line(f) for f in failures]
    lines.append(
        f"the build stopped at {stage}; --keep-going runs the later steps too (the report then has them)"
    )
    n = len(failures)
    raise GateFailed(f"{n} {stage} gate{'s' if n > 1 else ''} failed", lines=lines, failures=failures)


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


def _run_step(step: Step, artifact: Artifact | None, key: str, env: _Env, component: str | None = None):
    cache = env.cache
    workdir = cache.new_workdir()
    ctx = Context(
        recipe=env.recipe,
        target=env.target,
        workdir=workdir / "payload",
        reporter=env.reporter,
        artifacts=dict(env.artifacts),
        reports=dict(env.reports),
        debug=env.debug,
        component=component,
        cache_root=cache.root if env.use_cache else None,  # --no-cache recomputes everything
    )
    t0 = time.perf_counter()
    try:
        result = step.stage().run(artifact, step.config, ctx)
        seconds = time.perf_counter() - t0
        interrupt.test_pause(step.name, ctx.workdir)
        interrupt.check()  # an interrupt the stage's libraries swallowed still ends the build here
        if step.transforms:
            _seal(result)
            lineage = list(artifact.lineage) if artifact else []
            result.lineage = [
                *lineage,
                LineageEntry(stage=step.name, key=key, parent_sha256=artifact.sha256 if artifact else None),
            ]
        else:
            result = artifact
        ctx.report.setdefault("seconds", round(seconds, 4))
        _library_output(ctx)
        committed = cache.commit(key, workdir, result, ctx.report, seconds)
    except BuildError as exc:
        cache.discard(workdir)
        if component and exc.stage == step.name:  # say which component failed, once
            raise BuildError(
                exc.message.removeprefix(f"[{step.name}] "), stage=f"{step.name}: {component}"
            ) from exc
        raise
    except VoptError:
        cache.discard(workdir)
        raise
    except BaseException as exc:  # KeyboardInterrupt included: never leave a half-written entry
        cache.discard(workdir)
        if isinstance(exc, Exception):
            where = f"{step.name}: {component}" if component else step.name
            raise BuildError(f"{type(exc).__name__}: {exc}", stage=where) from exc
        raise
    return (committed if step.transforms else artifact), ctx.report, seconds


def _library_output(ctx: Context) -> None:
    """What libraries printed while the step ran (NNCF, onnxsim, ORT's log), one line per source as the
    reporter captured it: into the step's report, so the manifest keeps it and a cached rebuild says it
    again; warning-level lines join the step's warnings."""
    lines = ctx.reporter.library_output()
    if not lines:
        return
    ctx.report["library_output"] = [text for _, text in lines]
    warnings = ctx.report.setdefault("warnings", [])
    warnings += [text for level, text in lines if level == "warning" and text not in warnings]


def _check_component_sections(recipe: Any, artifact: Artifact) -> None:
    """A `components.<name>` section must name a component the model has (a typo would silently not apply)."""
    from vopt.recipe.components import unknown_components

    names = list(artifact.components)
    unknown = unknown_components(recipe, names)
    if unknown:
        from vopt.errors import RecipeError

        raise RecipeError(
            f"components.{unknown[0]}: no such component; the model has {', '.join(names)}",
            lines=[f"components.{u}: no such component" for u in unknown[1:]],
        )


def _seal(result: Artifact) -> None:
    """The sha256 of what a stage wrote: of its file, or of each component and then of the set. Files that
    belong to it beside it (an ONNX model's external data) are hashed into its metadata, so they are part of
    its identity and of the next step's key."""
    if result.components:
        from vopt.formats.components import combined_sha256

        for comp in result.components.values():
            comp.sha256 = sha256_path(comp.file)
            _seal_companions(comp)
        result.sha256 = combined_sha256(result.components)
    else:
        result.sha256 = sha256_path(result.file)
        _seal_companions(result)


def _seal_companions(part: Artifact) -> None:
    from vopt.registry import get_format

    part.meta.pop("companions_sha256", None)  # a parent's, carried over by derive()
    extras = get_format(part.format).companions(part.file) if part.file.is_file() else []
    if extras:
        part.meta["companions_sha256"] = {p.name: sha256_path(p) for p in extras}


def _summary(report: dict[str, Any]) -> str:
    return str(report.get("summary", ""))
