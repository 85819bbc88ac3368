"""Content hashes of data files, each file read once and its hash remembered by what `stat` says of it.

A cache key made of sizes and whole-second mtimes served stale results: a rewritten labels file, or an image
edited in the same second at the same size, kept its key. Keys hash content instead. Reading every image on
every plan would make an unchanged rebuild slow, so a hash is remembered (in a small SQLite table beside the
cache) with the file's device, inode, size, and nanosecond mtime and ctime: any write changes mtime and ctime,
and ctime cannot be set back by tools that preserve mtime (`cp -p`, `rsync -t`, `touch -r`).

File timestamps come from a coarse clock (a few ms on Linux), so a file written twice within one tick can
keep its mtime. As git does with its index, a hash is remembered only for a file whose mtime and ctime are
more than RACY_NS older than the moment it was read: a file that recent is hashed again next time."""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

RACY_NS = 2_000_000_000  # 2 s: well past any filesystem's timestamp granularity
_MEMO_FILE = "file-hashes.sqlite"
_seen: dict[tuple[str, int, int, int, int, int], str] = {}  # this process's memo


def _stat_key(name: str) -> tuple[str, int, int, int, int, int]:
    st = os.stat(name)  # the absolute path, not resolve(): the device and inode already say which file it is
    return (os.path.abspath(name), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _hash(name: str) -> str:
    h = hashlib.sha256()
    with open(name, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def memo_path() -> Path:
    from vopt.core.cache import default_cache_dir

    return Path(os.environ.get("VOPT_HASH_MEMO") or default_cache_dir() / _MEMO_FILE)


def _connect() -> sqlite3.Connection | None:
    """The memo table, or None where it cannot be opened (a read-only disk, a locked file on NFS): then
    every file is hashed, which is slower, never wrong."""
    path = memo_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(path), timeout=5)
        db.execute(
            "CREATE TABLE IF NOT EXISTS hashes (host TEXT, path TEXT, dev INTEGER, ino INTEGER, size INTEGER,"
            " mtime_ns INTEGER, ctime_ns INTEGER, sha256 TEXT, PRIMARY KEY (host, path))"
        )
        return db
    except (sqlite3.Error, OSError):
        return None


def content_sha256(path: Path | str) -> str:
    return content_hashes([path])[0]


def content_hashes(paths: Iterable[Path | str]) -> list[str]:
    """The sha256 of each file's content, in order; each distinct file is read at most once, and not at all
    when the memo knows it unchanged."""
    names = [os.fspath(p) for p in paths]
    keys = {n: _stat_key(n) for n in dict.fromkeys(names)}
    found = {n: _seen[k] for n, k in keys.items() if k in _seen}
    missing = [n for n in keys if n not in found]
    if missing:
        found.update(_fill(missing, keys))
    return [found[n] for n in names]


def _fill(names: list[str], keys: dict[str, tuple[str, int, int, int, int, int]]) -> dict[str, str]:
    host = socket.gethostname()
    out: dict[str, str] = {}
    db = _connect()
    try:
        known: dict[str, tuple] = {}
        if db is not None:
            with contextlib.suppress(sqlite3.Error):
                paths = [keys[n][0] for n in names]
                for i in range(0, len(paths), 500):
                    chunk = paths[i : i + 500]
                    rows = db.execute(
                        "SELECT path, dev, ino, size, mtime_ns, ctime_ns, sha256 FROM hashes "
                        f"WHERE host = ? AND path IN ({','.join('?' * len(chunk))})",
                        [host, *chunk],
                    )
                    known.update({r[0]: r for r in rows})
        fresh = []
        for n in names:
            key = keys[n]
            row = known.get(key[0])
            if row is not None and tuple(row[:6]) == key:
                out[n] = _seen[key] = row[6]
                continue
            started = time.time_ns()
            out[n] = _hash(n)
            # Remembered only when a later write must change the stat (not racily recent, not written while
            # it was read); otherwise hashed again next time.
            if _stat_key(n) == key and max(key[4], key[5]) < started - RACY_NS:
                _seen[key] = out[n]
                fresh.append((host, *key, out[n]))
        if db is not None and fresh:
            with contextlib.suppress(sqlite3.Error), db:
                db.executemany("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?, ?, ?)", fresh)
    finally:
        if db is not None:
            db.close()
    return out
