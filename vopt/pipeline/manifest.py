"""manifest.json, and the build directory it sits in."""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from vopt.errors import BuildError
from vopt.pipeline.artifact import Artifact

MANIFEST = "manifest.json"


def gate_failures(reports: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    failures = []
    for stage, report in reports.items():
        for gate in report.get("gates", []):
            if not gate.get("passed", False):
                failures.append({**gate, "stage": stage})
    return failures


def make_manifest(loaded, target, records, artifact: Artifact | None, failures) -> dict[str, Any]:
    from vopt.pipeline.runner import platform_info, versions

    reports = {r.stage: r.report for r in records}
    warnings = []
    if artifact is not None and artifact.meta.get("random_weights"):
        warnings.append(
            "the model has RANDOM weights (weights: random): its outputs are meaningless for a task"
        )
    for r in records:
        # a warning that already names its stage ("validate: 32 samples ...") is not prefixed twice
        for w in r.report.get("warnings", []):
            warnings.append(w if w.startswith(r.stage) else f"{r.stage}: {w}")
    gate_failed = failures or any(r.report.get("status") == "gate_failed" for r in records)
    return json_safe(
        {
            "vopt_version": versions()["vopt"],
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "status": "gate_failed" if gate_failed else "ok",
            "recipe": {
                "name": loaded.recipe.name,
                "file": str(loaded.path) if loaded.path else None,
                "files": [str(p) for p in loaded.raw.files],
                "resolved": loaded.resolved(),
            },
            "target": target.name,
            # What the artifact is, as its own metadata says (the compile step works it out once).
            "precision": artifact.meta.get("precision") if artifact is not None else None,
            "platform": platform_info(),
            "tools": versions(),
            "steps": [asdict(r) for r in records],
            "artifact": _artifact_entry(artifact),
            "validation": reports.get("validate"),
            "benchmark": reports.get("benchmark"),
            "gate_failures": failures,
            "warnings": warnings,
            # `model.trust: true` lets code run (arch: from any module, unpickling a checkpoint): say so.
            "trust_granted": [
                {"stage": r.stage, **r.report["trust_granted"]}
                for r in records
                if isinstance(r.report.get("trust_granted"), dict)
            ],
        }
    )


def json_safe(obj: Any) -> Any:
    """NaN and infinities become null: manifests must parse as strict JSON (jq, JSON.parse)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


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


def write_build_dir(final: Path, artifact: Artifact | None, manifest: dict[str, Any]) -> Path:
    """Write artifact + manifest + reports into a staging dir, then swap it in: never a partial build dir."""
    from vopt.pipeline.cache import atomic_replace_dir

    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove_dead_staging(final)
    staging = final.parent / f".{final.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        if artifact is not None:
            from vopt.pipeline.artifact import sha256_path
            from vopt.registry import get_format

            # The format lays the artifact out the way its runtime loads it (one folder per component for an
            # artifact of components), with the files that travel with it.
            get_format(artifact.format).write(artifact, staging)
            for part, where in _shipped(artifact, staging):
                if part.sha256 and sha256_path(where) != part.sha256:  # the manifest states what is shipped
                    raise BuildError(
                        f"{part.path} changed while it was copied to {final}; build again", stage="output"
                    )
        text = json.dumps(json_safe(manifest), indent=2, default=str, allow_nan=False)
        (staging / MANIFEST).write_text(text + "\n")
        from vopt.report import write_reports

        write_reports(manifest, staging, previous=final)
        from vopt.pipeline import interrupt

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
    from vopt.pipeline.cache import _alive

    for old in final.parent.glob(f".{final.name}.tmp-*"):
        pid = old.name.rsplit(".tmp-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(old, ignore_errors=True)


def read_manifest(build_dir: Path) -> dict[str, Any]:
    from vopt.errors import RecipeError

    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise RecipeError(f"{build_dir}: no {MANIFEST} (not a vopt build directory)")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable manifest ({exc})") from None
    if not isinstance(data, dict):
        raise RecipeError(f"{path}: not a vopt manifest (a JSON object was expected)")
    return data
