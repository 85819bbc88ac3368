"""Content-addressed step cache. Entries appear by atomic rename, so a killed build leaves none half-made."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vopt.pipeline.artifact import Artifact

ENTRY_FILE = "entry.json"


def default_cache_dir() -> Path:
    env = os.environ.get("VOPT_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vopt"


def step_key(material: dict[str, Any]) -> str:
    blob = json.dumps(material, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class CacheEntry:
    key: str
    artifact: Artifact
    report: dict[str, Any]
    duration_s: float


class Cache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or default_cache_dir())
        self.tmp_root = self.root / "tmp"

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> CacheEntry | None:
        entry_dir = self._dir(key)
        entry_file = entry_dir / ENTRY_FILE
        if not entry_file.is_file():
            return None
        try:
            data = json.loads(entry_file.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        art = data["artifact"]
        if art["path"].startswith("@entry/"):
            art["path"] = str(entry_dir / art["path"][len("@entry/") :])
        artifact = Artifact.model_validate(art)
        if not Path(artifact.path).exists():
            return None
        return CacheEntry(key, artifact, data.get("report", {}), data.get("duration_s", 0.0))

    def new_workdir(self) -> Path:
        """A private directory a stage writes into; it becomes the entry on commit."""
        self.clean_stale()
        path = self.tmp_root / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        (path / "payload").mkdir(parents=True)
        return path

    def commit(self, key: str, workdir: Path, artifact: Artifact, report: dict[str, Any], duration_s: float) -> Artifact:
        """Move the workdir into place. Paths inside it are stored relative to the entry."""
        data = artifact.model_dump(mode="json")
        inside = _relative_to(Path(artifact.path), workdir)
        if inside is not None:
            data["path"] = f"@entry/{inside}"
        (workdir / ENTRY_FILE).write_text(
            json.dumps({"key": key, "artifact": data, "report": report, "duration_s": duration_s}, indent=1, default=str)
        )
        final = self._dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace_dir(workdir, final)  # replaces an entry on --no-cache or a concurrent build
        entry = self.get(key)
        assert entry is not None
        return entry.artifact

    def discard(self, workdir: Path) -> None:
        shutil.rmtree(workdir, ignore_errors=True)

    def clean_stale(self) -> None:
        """Remove work directories of processes that are gone (e.g. killed mid-build)."""
        if not self.tmp_root.is_dir():
            return
        for child in self.tmp_root.iterdir():
            pid_text = child.name.split("-", 1)[0]
            if pid_text.isdigit() and _alive(int(pid_text)) and int(pid_text) != 0:
                continue
            shutil.rmtree(child, ignore_errors=True)


def atomic_replace_dir(staging: Path, final: Path) -> None:
    """Swap a fully written staging directory into place with renames only."""
    if final.exists():
        trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, trash)
        os.rename(staging, final)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.rename(staging, final)


def _relative_to(path: Path, root: Path) -> str | None:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, 0)
        return True
    return False
