"""manifest.json, and the build directory it sits in."""

from __future__ import annotations

import os
import platform
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import vopt
from vopt.core.artifact import Artifact
from vopt.core.results import MANIFEST, Manifest, RecipeInfo, StepRecord
from vopt.errors import BuildError
from vopt.machine import tool_versions


def gate_failures(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Every failed gate of every step, with the step's name."""
    failures = []
    for stage, report in reports.items():
        for gate in report.get("gates", []):
            if not gate.get("passed", False):
                failures.append({**gate, "stage": stage})
    return failures


def make_manifest(
    loaded: Any,
    target: Any,
    records: list[StepRecord],
    artifact: Artifact | None,
    failures: list[dict[str, Any]],
) -> Manifest:
    warnings = []
    if artifact is not None and artifact.meta.get("random_weights"):
        warnings.append(
            "the model has RANDOM weights (weights: random): its outputs are meaningless for a task"
        )
    for r in records:
        # a warning that already names its stage ("validate: 32 samples ...") is not prefixed twice
        for w in r.report.get("warnings", []):
            warnings.append(w if w.startswith(r.stage) else f"{r.stage}: {w}")
    reports = {r.stage: r.report for r in records}
    gate_failed = failures or any(r.report.get("status") == "gate_failed" for r in records)
    return Manifest(
        vopt_version=versions()["vopt"],
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        status="gate_failed" if gate_failed else "ok",
        recipe=RecipeInfo(
            name=loaded.recipe.name,
            file=str(loaded.path) if loaded.path else None,
            files=[str(p) for p in loaded.raw.files],
            resolved=loaded.resolved(),
        ),
        target=target.name,
        # What the artifact is, as its own metadata says (the compile step works it out once).
        precision=artifact.meta.get("precision") if artifact is not None else None,
        platform=platform_info(),
        tools=versions(),
        steps=records,
        artifact=_artifact_entry(artifact),
        validation=reports.get("validate"),
        benchmark=reports.get("benchmark"),
        gate_failures=failures,
        warnings=warnings,
        # `model.trust: true` lets code run (arch: from any module, unpickling a checkpoint): say so.
        trust_granted=[
            {"stage": r.stage, **r.report["trust_granted"]}
            for r in records
            if isinstance(r.report.get("trust_granted"), dict)
        ],
    )


def _artifact_entry(artifact: Artifact | None) -> dict[str, Any] | None:
    if artifact is None:
        return None
    data = artifact.model_dump(mode="json")
    data["file"] = shipped_name(artifact)
    data["size_bytes"] = artifact.size_bytes()
    data.pop("path")
    if artifact.components:  # each component as it lies in the build directory
        data["components"] = {name: _artifact_entry(comp) for name, comp in artifact.components.items()}
        for name, comp in data["components"].items():
            comp["file"] = f"{name}/{comp['file']}"
    else:
        data.pop("components", None)  # a single-file artifact's entry stays as it always was
    return data


def write_build_dir(final: Path, artifact: Artifact | None, manifest: Manifest) -> Path:
    """Write artifact + manifest + reports into a staging dir, then swap it in: never a partial build dir."""
    from vopt.core.cache import atomic_replace_dir

    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(final)
    staging = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if artifact is not None:
            from vopt.core.artifact import sha256_path
            from vopt.registry import get_format

            # The format lays the artifact out the way its runtime loads it (one folder per component for an
            # artifact of components), with the files that travel with it.
            get_format(artifact.format).write(artifact, staging)
            for part, where in _shipped(artifact, staging):
                if part.sha256 and sha256_path(where) != part.sha256:  # the manifest states what is shipped
                    raise BuildError(
                        f"{part.path} changed while it was copied to {final}; build again", stage="output"
                    )
        manifest.write(staging / MANIFEST)
        from vopt.report import write_reports

        write_reports(manifest.to_json(), staging, previous=final)
        from vopt.core import interrupt

        interrupt.test_pause("output", staging)
        interrupt.check()
        atomic_replace_dir(staging, final)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(exc, OSError):
            raise BuildError(f"cannot write {final}: {exc}", stage="output") from exc
        raise
    return final


def shipped_name(artifact: Artifact) -> str:
    """Where the artifact lies in its build directory: its file's name, or "." for an artifact of components
    (one folder per component)."""
    return "." if artifact.components else Path(artifact.path).name


def _shipped(artifact: Artifact, staging: Path) -> list[tuple[Artifact, Path]]:
    """(artifact, its copy in the build directory) for the artifact, or for each of its components."""
    if not artifact.components:
        return [(artifact, staging / shipped_name(artifact))]
    return [
        (comp, staging / name / Path(comp.path).name)
        for name, comp in artifact.components.items()
        if comp.path
    ]


def _remove_dead_staging(final: Path) -> None:
    """Staging directories left by a build that was SIGKILLed while writing (their process is gone)."""
    from vopt.core.cache import _alive

    for old in final.parent.glob(f".{final.name}.tmp-*"):
        pid = old.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


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
    # Every runtime and converter a build may have used: the manifest says which versions made it.
    names = [
        "torch",
        "transformers",
        "onnx",
        "onnxruntime",
        "openvino",
        "nncf",
        "onnxruntime-qnn",
        "coremltools",
        "tensorrt",
        "ai-edge-litert",
        "litert-torch",
        "diffusers",
        "ultralytics",
    ]
    return {"vopt": vopt.__version__, **{k: v for k, v in tool_versions(names).items() if v != "absent"}}
