"""What a build says about itself, as typed models with a JSON round trip (Polygraphy's comparator/struct.py,
Olive's metric results): the manifest, each step's record, and each gate's verdict. The engine writes these;
`vopt inspect`, `vopt bench`, `vopt compare` and the report read them back with `read_manifest`.

`manifest.json` stays the JSON it was (every field an older vopt wrote is still there, under the same name);
`schema_version` says which shape a file has, and a manifest written before it existed (schema 1) still reads.
Stage reports inside a step stay open dicts: each stage owns its own report's keys."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MANIFEST = "manifest.json"
# 1: until December 2026 (no schema_version field). 2: adds schema_version and artifacts of components.
SCHEMA_VERSION = 2


class GateResult(BaseModel):
    """One gate's verdict. Rates measured on images also carry their interval (n, ci95, straddles, ...)."""

    model_config = ConfigDict(extra="allow")

    metric: str
    value: float | None
    condition: str
    threshold: float | None = None
    passed: bool
    stage: str | None = None  # which step's gate (set in the manifest's gate_failures)
    default: bool | None = None  # a task default, not the recipe's


class StepRecord(BaseModel):
    """One step of a build: its cache key and what the key is made of, whether it came from the cache, how
    long it took, its input and output, and the stage's report."""

    stage: str
    key: str
    cached: bool
    seconds: float
    input_sha256: str | None
    output_sha256: str | None
    config: dict[str, Any]
    report: dict[str, Any] = Field(default_factory=dict)
    output_bytes: int | None = None  # the size of the step's artifact (transform steps)
    # The rest of what the key hashes (vopt version, parent identity, fingerprint, tool versions); for a
    # step run per component, each component's record under `components`.
    key_material: dict[str, Any] = Field(default_factory=dict)


class RecipeInfo(BaseModel):
    name: str
    file: str | None
    files: list[str] = Field(default_factory=list)
    resolved: dict[str, Any] = Field(default_factory=dict)


class Manifest(BaseModel):
    """manifest.json."""

    model_config = ConfigDict(extra="allow")  # a newer vopt's fields survive a read and write by this one

    schema_version: int = SCHEMA_VERSION
    vopt_version: str
    created: str
    status: Literal["ok", "gate_failed"]
    recipe: RecipeInfo
    target: str
    precision: str | None = None  # what the artifact is, as its own metadata says (the one writer: compile)
    platform: dict[str, Any] = Field(default_factory=dict)
    tools: dict[str, str] = Field(default_factory=dict)
    steps: list[StepRecord] = Field(default_factory=list)
    artifact: dict[str, Any] | None = None  # the Artifact as shipped: file, size_bytes, components, ...
    validation: dict[str, Any] | None = None
    benchmark: dict[str, Any] | None = None
    gate_failures: list[GateResult] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)
    trust_granted: list[dict[str, Any]] = Field(default_factory=list)
    vopt_seconds: float | None = None

    def step(self, stage: str) -> StepRecord | None:
        return next((s for s in self.steps if s.stage == stage), None)

    def to_json(self) -> dict[str, Any]:
        """The JSON-safe dict manifest.json holds (NaN and infinities as null)."""
        return json_safe(self.model_dump(mode="json", exclude_none=False))

    def write(self, path: Path) -> None:
        text = json.dumps(self.to_json(), indent=2, default=str, allow_nan=False)
        Path(path).write_text(text + "\n")


def json_safe(obj: Any) -> Any:
    """NaN and infinities become null: manifests must parse as strict JSON (jq, JSON.parse)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def parse_manifest(data: Any, where: str) -> Manifest:
    """A manifest from its JSON, any schema this vopt knows; a RecipeError naming the file otherwise."""
    from vopt.errors import RecipeError, first_line

    if not isinstance(data, dict):
        raise RecipeError(f"{where}: not a vopt manifest (a JSON object was expected)")
    version = data.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecipeError(
            f"{where}: manifest schema {version!r} is newer than this vopt reads ({SCHEMA_VERSION}); "
            "upgrade vopt"
        )
    try:
        return Manifest.model_validate({**data, "schema_version": version})
    except ValueError as exc:
        raise RecipeError(f"{where}: not a vopt manifest ({first_line(exc)})") from None


def read_manifest(build_dir: Path) -> dict[str, Any]:
    """A build directory's manifest as the JSON dict it is on disk, after checking it against the schema
    (commands read it as data; `load_manifest` gives the typed model)."""
    data = _read(build_dir)
    parse_manifest(data, str(Path(build_dir) / MANIFEST))
    return {"schema_version": 1, **data}


def load_manifest(build_dir: Path) -> Manifest:
    return parse_manifest(_read(build_dir), str(Path(build_dir) / MANIFEST))


def _read(build_dir: Path) -> Any:
    from vopt.errors import RecipeError

    path = Path(build_dir) / MANIFEST
    if not path.is_file():
        raise RecipeError(f"{build_dir}: no {MANIFEST} (not a vopt build directory)")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecipeError(f"{path}: not a readable manifest ({exc})") from None
