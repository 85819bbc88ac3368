"""Profile an artifact (a build directory, an .onnx or an OpenVINO .xml) on the runtime that runs it here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vopt.errors import BackendUnavailable
from vopt.profiling.result import Profile

# An artifact compiled for the browser (webgpu, webnn targets) is profiled where it runs: onnxruntime-web.
# Any other artifact goes to the profiler its format names (Format.profiler: ORT's, OpenVINO's PERF_COUNT).
WEB_PROFILER = "vopt.profiling.browser:profile_web"


def _for_the_browser(fmt: Any, path: str | Path) -> bool:
    """The webgpu/webnn targets record their EP in the model's metadata (vopt.web.ep)."""
    try:
        return "vopt.web.ep" in fmt.read_metadata(Path(path))
    except Exception:  # noqa: BLE001 - an unreadable file is the profiler's to report
        return False


def profile_artifact(
    artifact: Any,
    feeds: dict[str, Any],
    *,
    runs: int,
    threads: int | None,
    settings: dict[str, Any] | None = None,
) -> Profile:
    from vopt.registry import get_format, load_object

    fmt = get_format(artifact.format)
    spec = WEB_PROFILER if _for_the_browser(fmt, artifact.path) else fmt.profiler
    if spec is None:
        raise BackendUnavailable(
            f"no profiler for {artifact.format} artifacts here (vopt profile reads ONNX Runtime's "
            f"profiler, onnxruntime-web's in headless Chromium, and OpenVINO's PERF_COUNT)"
        )
    return load_object(spec)(artifact.path, feeds, runs=runs, threads=threads, **(settings or {}))


def profile_path(
    path: Path,
    *,
    runs: int = 10,
    threads: int | None = None,
    batch: int = 1,
    reference: bool = False,
    cache_dir: Path | None = None,
    settings: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The artifact's profile, and with `reference` the PyTorch model's, on the same real images."""
    from vopt.bench.harness import tile
    from vopt.bench.source import resolve_source
    from vopt.datasets.images import load_batch

    src = resolve_source(path, cache_dir)
    art = src.artifact
    inp = art.io.inputs[0]
    if isinstance(inp.shape[0], int):
        batch = inp.shape[0]  # a static batch axis allows only its own size
    images = tile(load_batch(None, art.preprocess, min(8, batch)), batch)
    result: dict[str, Any] = {
        "artifact": str(art.path),
        "format": art.format,
        "batch": batch,
        "profile": profile_artifact(art, {inp.name: images}, runs=runs, threads=threads, settings=settings),
        "notes": list(src.notes),
    }
    if reference:
        if src.load_reference is None:
            result["notes"].append("no PyTorch model for this artifact: no reference profile")
        else:
            from vopt.profiling.torch_ref import profile_torch

            result["reference"] = profile_torch(src.load_reference(), images, runs=max(1, runs // 2))
    return result
