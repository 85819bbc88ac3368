"""Artifacts: what flows between stages."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field


class TensorSpec(BaseModel):
    name: str
    shape: list[int | str]
    dtype: str = "float32"


class IOSpec(BaseModel):
    inputs: list[TensorSpec] = Field(default_factory=list)
    outputs: list[TensorSpec] = Field(default_factory=list)


class Preprocess(BaseModel):
    """The preprocessing contract carried from the recipe into calibration, validation and metadata."""

    size: list[int] = Field(default=[224, 224])
    resize: int | None = None
    mean: list[float] = Field(default=[0.485, 0.456, 0.406])
    std: list[float] = Field(default=[0.229, 0.224, 0.225])
    scale: float = 1 / 255
    channel_order: str = "RGB"
    layout: str = "NCHW"
    # uint8: raw pixels (export.embed_preprocessing put the arithmetic into the graph); mean/std/scale unused.
    dtype: str = "float32"


class LineageEntry(BaseModel):
    stage: str
    key: str
    parent_sha256: str | None = None


class Artifact(BaseModel):
    """One model file or directory of a registered format (vopt.formats), or a set of named components, each
    an Artifact of its own (format `components`: a text encoder, a UNet and a VAE; a network and its NMS). The
    engine runs transform stages per component and caches each on its own."""

    path: str
    format: str  # a registered format's name (vopt.registry.FORMATS); the format plugin says what it is
    sha256: str = ""
    io: IOSpec = Field(default_factory=IOSpec)
    preprocess: Preprocess = Field(default_factory=Preprocess)
    lineage: list[LineageEntry] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)
    components: dict[str, Artifact] = Field(default_factory=dict)

    @property
    def file(self) -> Path:
        return Path(self.path)

    def derive(self, path: str | Path, format: str | None = None, **changes: Any) -> Artifact:
        """A child artifact: same contract and metadata unless changed."""
        data = self.model_dump()
        data.update(path=str(path), format=format or self.format, sha256="", **changes)
        data["meta"] = {**self.meta, **changes.get("meta", {})}
        if data["format"] != self.format:
            data["meta"].pop("module_ref", None)  # how to rebuild a torch module: not its export's
        return Artifact.model_validate(data)

    def size_bytes(self) -> int:
        if self.components:
            return sum(c.size_bytes() for c in self.components.values())
        return path_size(self.file)

    def identity(self) -> str:
        """What the next step's cache key depends on: the bytes *and* the contract that travels with them
        (preprocessing, I/O spec, metadata), so a changed `preprocess:` re-runs the steps that read it."""
        import json

        fields: dict[str, Any] = {
            "io": self.io.model_dump(mode="json"),
            "preprocess": self.preprocess.model_dump(mode="json"),
            "meta": self.meta,
            "format": self.format,
        }
        if self.components:  # a set of components is what its components are
            fields["components"] = {name: c.identity() for name, c in sorted(self.components.items())}
        contract = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(f"{self.sha256}|{contract}".encode()).hexdigest()


def sha256_path(path: Path) -> str:
    """Hash of a file, or of a directory's relative paths and contents."""
    h = hashlib.sha256()
    if path.is_file():
        _hash_file(path, h)
        return h.hexdigest()
    for sub in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(sub.relative_to(path)).encode())
        _hash_file(sub, h)
    return h.hexdigest()


def hash_file(path: Path) -> str:
    h = hashlib.sha256()
    _hash_file(path, h)
    return h.hexdigest()


def _hash_file(path: Path, h: Any) -> None:
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def path_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


Artifact.model_rebuild()  # `components` refers to the class itself
