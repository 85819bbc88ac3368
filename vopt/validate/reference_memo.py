"""The reference model's outputs on the validation images, kept in the build's cache beside its steps.

Validation runs the original PyTorch model on its images in every build whose artifact changed: each `vopt
tune` candidate, each rebuild after a quantize or compile edit. The original and the images did not change, so
neither do its outputs. The key is the reference artifact's sha256 and architecture, the images' bytes, how
they are run and the versions of the libraries that run them; a file's name carries the sha256 of its bytes,
checked on every read, so a damaged file is recomputed and never used. Files are plain .npz arrays, read
without pickle."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from vopt.core.artifact import Artifact, hash_file
from vopt.machine import tool_versions

# A chunk's outputs above this size are recomputed each time rather than kept (a segmentation map's).
MAX_BYTES = 64 << 20
# The libraries a reference runs on: a new version may compute other numbers.
RUNTIMES = ("torch", "transformers", "timm", "ultralytics", "diffusers", "onnxruntime")


class ReferenceMemo:
    """`outputs(images, compute)`: the reference's outputs on `images`, from the memo or from `compute()`
    (then kept). `root` None (no cache) or a reference without a sha256 always computes."""

    def __init__(self, root: Path | None, reference: Artifact, settings: dict[str, Any]):
        import vopt

        self.dir = root / "references" if root is not None and reference.sha256 else None
        self.identity = json.dumps(
            {
                "sha256": reference.sha256,
                "format": reference.format,
                "module_ref": reference.meta.get("module_ref"),
                "settings": settings,
                "vopt": vopt.__version__,
                "versions": tool_versions(RUNTIMES),
            },
            sort_keys=True,
            default=str,
        )
        self.reused = self.computed = 0

    def outputs(self, images: np.ndarray, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, Any]:
        if self.dir is None:
            return compute()
        digest = hashlib.sha256(self.identity.encode())
        digest.update(f"{images.dtype}{images.shape}".encode())
        digest.update(np.ascontiguousarray(images).tobytes())
        key = digest.hexdigest()
        kept = self._read(key)
        if kept is not None:
            self.reused += len(images)
            return kept
        found = compute()
        self.computed += len(images)
        self._write(key, found)
        return found

    def summary(self) -> str | None:
        if self.dir is None or not (self.reused or self.computed):
            return None
        if not self.computed:
            return f"from the cache ({self.reused} images)"
        return f"computed ({self.computed} images), kept in the cache" + (
            f"; {self.reused} from the cache" if self.reused else ""
        )

    def _read(self, key: str) -> dict[str, Any] | None:
        assert self.dir is not None
        for path in sorted((self.dir / key[:2]).glob(f"{key}-*.npz")):
            try:
                if hash_file(path) != path.stem.rsplit("-", 1)[1]:
                    raise ValueError("does not match its sha256")
                with np.load(path, allow_pickle=False) as data:
                    return {str(name): data[f"arr_{i}"] for i, name in enumerate(data["names"])}
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                with contextlib.suppress(OSError):
                    path.unlink()  # damaged or not one vopt wrote: recomputed below, and written again
        return None

    def _write(self, key: str, found: dict[str, Any]) -> None:
        assert self.dir is not None
        arrays = {name: np.asarray(v) for name, v in found.items()}
        too_big = sum(a.nbytes for a in arrays.values()) > MAX_BYTES
        if too_big or any(a.dtype == object for a in arrays.values()):
            return
        folder = self.dir / key[:2]
        tmp = folder / f".{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}.npz"
        try:
            folder.mkdir(parents=True, exist_ok=True)
            np.savez(tmp, *arrays.values(), names=np.array(list(arrays), dtype=str))
            os.replace(tmp, folder / f"{key}-{hash_file(tmp)}.npz")
        except OSError:  # a read-only or full cache: validation still ran, only nothing is kept
            with contextlib.suppress(OSError):
                tmp.unlink()
