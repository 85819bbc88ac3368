"""benchmark: time the final artifact on its real runtime (a check step: cached like validate)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact
from vopt.recipe.models import CompileSection
from vopt.recipe.sections.benchmark import BenchmarkSection
from vopt.stages.base import Stage


class BenchmarkConfig(BaseModel):
    section: BenchmarkSection
    compile: CompileSection  # type: ignore[valid-type]  # the target's typed Config: its runner's settings


class BenchmarkStage(Stage):
    name = "benchmark"
    transforms = False
    tools = ("torch", "onnxruntime")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> BenchmarkConfig | None:
        if recipe.benchmark is None:
            return None
        return BenchmarkConfig(section=recipe.benchmark, compile=recipe.compile)

    @classmethod
    def extra_tools(cls, config: BenchmarkConfig, target: Any) -> list[str]:
        return target.tool_versions()

    @classmethod
    def fingerprint(cls, config: BenchmarkConfig) -> dict[str, Any]:
        """Timings belong to a machine: a cache copied from another one must not replay its latencies."""
        import os
        import platform

        from vopt.machine import cpu_model

        return {
            "machine": platform.machine(),
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "node": platform.node(),
        }

    def run(self, artifact: Artifact, config: BenchmarkConfig, ctx) -> Artifact:
        from vopt.bench.harness import BenchSettings, run_benchmark
        from vopt.bench.targets import runner_factory
        from vopt.datasets.images import load_batch
        from vopt.errors import BackendUnavailable

        sec = config.section
        make, threads, note = runner_factory(ctx.target, artifact, config.compile, sec.threads)
        if note:
            ctx.warn(note)
        settings = BenchSettings(
            sec.batch_sizes, sec.warmup, sec.iterations, sec.seconds, threads, sec.baseline
        )
        images = load_batch(None, artifact.preprocess, min(8, max(sec.batch_sizes)))
        try:
            report = run_benchmark(
                make,
                artifact.io.inputs[0].name,
                artifact.io.inputs[0].shape[0],
                images,
                settings,
                load_reference=_reference(ctx, artifact),
                artifact_bytes=artifact.size_bytes(),
                reporter=ctx.reporter,
            )
        except BackendUnavailable as exc:
            ctx.warn(f"benchmark not run: {exc.message}")
            ctx.report.update(status="not run", reason=exc.message, summary=f"not run: {exc.message}")
            return artifact
        for w in report.pop("warnings", []):
            ctx.warn(w)
        ctx.report.update(status="ok", **report)
        from vopt.registry import get_format

        if getattr(ctx.target, "compares_cpu_runtimes", False) and get_format(artifact.format).portable:
            ctx.report["runtime_advice"] = _runtime_advice(
                artifact, images, threads[0] if threads else None, ctx
            )
        if sec.profile:
            ctx.report["profile"] = _profile(artifact, images, threads[0] if threads else None, ctx)
        return artifact


def _runtime_advice(artifact: Artifact, images: Any, threads: int | None, ctx: Any) -> dict[str, Any]:
    """The same file on OpenVINO's CPU plugin, timed against ONNX Runtime: say so when it is much faster."""
    from vopt.bench.alternatives import openvino_vs_ort
    from vopt.bench.harness import tile
    from vopt.errors import first_line

    inp = artifact.io.inputs[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else 1
    # The model before the target's runtime-specific rewrite (ORT's fused QLinear*/com.microsoft ops are
    # not ONNX that OpenVINO reads): the quantize step's QDQ file, else the export.
    from vopt.registry import get_format

    portable = next(
        (
            ctx.artifacts[s]
            for s in ("quantize", "export")
            if s in ctx.artifacts and get_format(ctx.artifacts[s].format).portable
        ),
        artifact,
    )
    try:
        with ctx.reporter.bar("is another CPU runtime faster?", None):
            result = openvino_vs_ort(portable.path, {inp.name: tile(images, batch)}, threads=threads)
    except Exception as exc:  # noqa: BLE001 - advice must never cost a finished build
        return {
            "status": "not run",
            "reason": first_line(exc, limit=200, with_type=True),
        }
    result["file"] = Path(portable.path).name
    if result.get("advice"):
        ctx.warn(result["advice"])
    return result


def _profile(artifact: Artifact, images: Any, threads: int | None, ctx: Any) -> dict[str, Any]:
    """Per-op times at batch 1 from the runtime's own profiler; 'not run' where no profiler reads it."""
    from vopt.errors import BackendUnavailable
    from vopt.profiling.run import profile_artifact

    inp = artifact.io.inputs[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else 1
    from vopt.bench.harness import tile

    try:
        with ctx.reporter.bar("profile per op", None):
            prof = profile_artifact(artifact, {inp.name: tile(images, batch)}, runs=10, threads=threads)
    except BackendUnavailable as exc:
        ctx.warn(f"profile not run: {exc.message}")
        return {"status": "not run", "reason": exc.message}
    return {"status": "ok", "batch": batch, **prof.to_dict(top=15)}


def _reference(ctx: Any, artifact: Artifact):
    """PyTorch eager baseline: the model as loaded (before fuse/prune), when this build has one."""
    from vopt.registry import get_format

    loaded = ctx.artifacts.get("load")
    if loaded is None or not get_format(loaded.format).torch_module:
        return None

    def load() -> Any:
        from vopt.models.resolve import OutputWrapper, family_of, load_module

        module = OutputWrapper.wrap(load_module(loaded), family_of(artifact))
        steps = artifact.meta.get("embedded_preprocessing")
        if steps:  # the artifact takes raw pixels: PyTorch does the same preprocessing, for a fair speedup
            from vopt.models.embed import embed

            module = embed(module, loaded.preprocess, steps.get("camera_size"))
        return module

    return load
