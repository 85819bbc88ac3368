"""Content-addressed step cache. Entries appear by atomic rename, so a killed build leaves none half-made;
every entry records the sha256 of its files and a hit re-hashes them, so a damaged entry is never used;
a per-key file lock makes concurrent builds of one step wait for each other instead of racing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vopt.core.artifact import Artifact, hash_file, sha256_path
from vopt.errors import first_line

ENTRY_FILE = "entry.json"
# Entries of format 1 carried no file hashes, and of format 2 no seal over entry.json: both are rebuilt.
ENTRY_FORMAT = 3
# entry.json ends with the sha256 of its own bytes (this field holding zeros when it was hashed), so a flipped
# bit anywhere in it (a recorded io spec, a metric, a report field) is a damaged entry, not a hit.
_SEAL = re.compile(rb'"sha256": "([0-9a-f]{64})"\n}\n?\Z')
_ZEROS = b"0" * 64
# How a cached torch module may be stored: safetensors + reference, or a fixed graph given by the user.
SAFE_MODULE_FORMATS = ("safetensors", "torchscript", "exported")


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


class BadEntry(Exception):
    """An entry that is damaged or was tampered with: the reason is reported and the entry rebuilt."""


class Cache:
    def __init__(self, root: Path | None = None):
        self.root = Path(root or default_cache_dir())
        self.tmp_root = self.root / "tmp"
        self.lock_root = self.root / "locks"
        self.warnings: list[str] = []  # discarded entries, for the build to report
        self._locks: dict[str, Any] = {}

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str, accept: Callable[[Artifact], str | None] | None = None) -> CacheEntry | None:
        """The entry, re-verified against the hashes it recorded; a damaged entry is discarded and
        reported. `accept(artifact)` says why an intact entry may not be used here (it names code the
        recipe being built does not): such an entry is discarded and reported the same way."""
        entry_dir = self._dir(key)
        if not (entry_dir / ENTRY_FILE).is_file():
            return None
        try:
            entry = _read_entry(key, entry_dir)
            why = accept(entry.artifact) if accept is not None else None
            if why:
                raise BadEntry(f"{why} (a cache entry is data: it runs only what the recipe names)")
            return entry
        except BadEntry as exc:
            self.warnings.append(f"cache entry {key[:12]} discarded and rebuilt: {exc}")
            with self.lock(key):
                if entry_dir.is_dir():
                    trash = entry_dir.parent / f".{entry_dir.name}.bad-{uuid.uuid4().hex[:8]}"
                    with contextlib.suppress(OSError):
                        os.rename(entry_dir, trash)
                        shutil.rmtree(trash, ignore_errors=True)
            return None

    def take_warnings(self) -> list[str]:
        out, self.warnings = self.warnings, []
        return out

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """An exclusive per-key lock across processes: a second build of the same step waits, then reuses
        it."""
        from filelock import FileLock

        self.lock_root.mkdir(parents=True, exist_ok=True)
        # One lock object per key: it is re-entrant (get() discarding an entry while the engine holds the
        # lock), where a second object on the same file would deadlock.
        lock = self._locks.setdefault(key, FileLock(str(self.lock_root / f"{key}.lock")))
        with lock:
            yield

    def new_workdir(self) -> Path:
        """A private directory a stage writes into; it becomes the entry on commit."""
        self.clean_stale()
        path = self.tmp_root / f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        (path / "payload").mkdir(parents=True)
        return path

    def commit(
        self, key: str, workdir: Path, artifact: Artifact, report: dict[str, Any], duration_s: float
    ) -> Artifact:
        """Move the workdir into place. Paths inside it are stored relative to the entry."""
        data = _entry_paths(artifact.model_dump(mode="json"), workdir)
        files = {
            str(p.relative_to(workdir)): {"sha256": hash_file(p), "size": p.stat().st_size}
            for p in sorted(workdir.rglob("*"))
            if p.is_file()
        }
        write_entry(
            workdir / ENTRY_FILE,
            {
                "format": ENTRY_FORMAT,
                "key": key,
                "artifact": data,
                "files": files,
                "report": report,
                "duration_s": duration_s,
            },
        )
        final = self._dir(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        atomic_replace_dir(workdir, final)  # replaces an entry on --no-cache
        entry = self.get(key)
        if entry is None:
            raise BadEntry(
                f"the entry {key[:12]} did not verify right after it was written: {self.warnings[-1:]}"
            )
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


def write_entry(path: Path, data: dict[str, Any]) -> None:
    """Write an entry's `entry.json`, sealed: its last field is the sha256 of the file's own bytes, taken with
    that field's value as 64 zeros."""
    fields = {k: v for k, v in data.items() if k != "sha256"}
    body = json.dumps({**fields, "sha256": _ZEROS.decode()}, indent=1, default=str).encode() + b"\n"
    head, _, tail = body.rpartition(_ZEROS)
    path.write_bytes(head + hashlib.sha256(body).hexdigest().encode() + tail)


def _unsealed(raw: bytes) -> bytes:
    """The entry.json bytes, if their seal holds; else BadEntry."""
    seal = _SEAL.search(raw)
    if seal is None:
        raise BadEntry(f"{ENTRY_FILE} has no seal at its end (damaged, or written by another version)")
    zeroed = raw[: seal.start(1)] + _ZEROS + raw[seal.end(1) :]
    if hashlib.sha256(zeroed).hexdigest().encode() != seal.group(1):
        raise BadEntry(f"{ENTRY_FILE} does not match its seal (a changed byte in its metadata)")
    return raw


def _read_entry(key: str, entry_dir: Path) -> CacheEntry:
    try:
        raw = (entry_dir / ENTRY_FILE).read_bytes()
    except OSError as exc:
        raise BadEntry(f"{ENTRY_FILE} is not readable ({type(exc).__name__})") from None
    try:
        data = json.loads(_unsealed(raw))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadEntry(f"{ENTRY_FILE} is not readable JSON ({type(exc).__name__})") from None
    if not isinstance(data, dict) or data.get("format") != ENTRY_FORMAT:
        raise BadEntry(f"{ENTRY_FILE} is not a format-{ENTRY_FORMAT} entry")
    art, files = data.get("artifact"), data.get("files")
    if not isinstance(art, dict) or not isinstance(art.get("path"), str) or not isinstance(files, dict):
        raise BadEntry(f"{ENTRY_FILE} has no `artifact` or no `files`")
    if data.get("key") != key:
        raise BadEntry(f"{ENTRY_FILE} names another key")
    on_disk = {str(p.relative_to(entry_dir)) for p in entry_dir.rglob("*") if p.is_file()} - {ENTRY_FILE}
    if on_disk != set(files):
        raise BadEntry(f"files differ from the recorded list ({', '.join(sorted(on_disk ^ set(files))[:3])})")
    for rel, rec in files.items():
        path = entry_dir / rel
        # Hashing is cheap next to a model build (a ResNet-18-sized 47 MB entry: 0.08-0.3 s): always do it.
        if (
            not isinstance(rec, dict)
            or path.stat().st_size != rec.get("size")
            or hash_file(path) != rec.get("sha256")
        ):
            raise BadEntry(f"{rel} does not match its recorded size and sha256 (truncated or modified)")
    _resolve_paths(art, entry_dir)
    try:
        artifact = Artifact.model_validate(art)
    except ValueError as exc:
        raise BadEntry(f"`artifact` is malformed: {first_line(exc)}") from None
    for part in [artifact, *artifact.components.values()]:
        if part.path and not Path(part.path).exists():
            raise BadEntry(f"the artifact file {Path(part.path).name} is missing")
        # a module is stored as safetensors plus a reference, or a fixed graph the user gave: never a pickle
        if "module_format" in part.meta and part.meta["module_format"] not in SAFE_MODULE_FORMATS:
            raise BadEntry(f"it holds a '{part.meta['module_format']}' module; the cache holds no pickles")
    for rel in files:
        with (entry_dir / rel).open("rb") as f:
            head = f.read(2)
        if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
            raise BadEntry(f"{rel} is a pickle; the cache holds no pickles")
    # An artifact of components is checked component by component (its own sha256 is made of theirs).
    for part in artifact.components.values() or [artifact]:
        inside = _relative_to(Path(part.path), entry_dir) if part.path else None
        if inside is not None and part.sha256:
            # A single file was just hashed above; a directory's hash also covers its file names.
            actual = files[inside]["sha256"] if inside in files else sha256_path(Path(part.path))
            if actual != part.sha256:
                raise BadEntry("the artifact does not match its recorded sha256")
    report = data.get("report", {})
    duration = data.get("duration_s", 0.0)
    return CacheEntry(
        key,
        artifact,
        report if isinstance(report, dict) else {},
        float(duration) if isinstance(duration, (int, float)) else 0.0,
    )


def _entry_paths(data: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Paths inside the work directory (the artifact's, and each component's) stored relative to the entry."""
    inside = _relative_to(Path(data["path"]), workdir) if data.get("path") else None
    if inside is not None:
        data["path"] = f"@entry/{inside}"
    for comp in (data.get("components") or {}).values():
        _entry_paths(comp, workdir)
    return data


def _resolve_paths(data: dict[str, Any], entry_dir: Path) -> None:
    if isinstance(data.get("path"), str) and data["path"].startswith("@entry/"):
        data["path"] = str(entry_dir / data["path"][len("@entry/") :])
    components = data.get("components")
    if isinstance(components, dict):
        for comp in components.values():
            if isinstance(comp, dict):
                _resolve_paths(comp, entry_dir)


def atomic_replace_dir(staging: Path, final: Path) -> None:
    """Swap a fully written staging directory into place. On Linux one renameat2(RENAME_EXCHANGE) swaps
    them atomically, so a reader never sees the place empty; elsewhere rename, and on a collision (another
    process put a directory there first) move that one aside and retry, instead of checking first."""
    if _exchange(staging, final):
        shutil.rmtree(staging, ignore_errors=True)  # staging now holds the old directory
        return
    for _ in range(100):
        try:
            os.rename(staging, final)
            return
        except OSError as exc:
            if (
                not final.exists()
                and not isinstance(exc, (IsADirectoryError, FileExistsError))
                and exc.errno not in (39, 66)
            ):  # ENOTEMPTY on Linux / macOS
                raise
        trash = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        with contextlib.suppress(FileNotFoundError):  # another process moved it away first
            os.rename(final, trash)
            shutil.rmtree(trash, ignore_errors=True)
    raise OSError(f"could not move {staging} to {final}: it keeps being replaced")


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2); False where that is not possible."""
    import sys

    if not sys.platform.startswith("linux") or not b.exists():
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0


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
