"""Real images through the preprocessing contract: listing, fingerprinting and streaming batches."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vopt.errors import RecipeError
from vopt.pipeline.artifact import Preprocess

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
BUILTIN = "builtin:samples"


def list_images(data: str | list[str] | None) -> list[Path]:
    """Image files under the given folders (recursive, sorted). None means the built-in samples."""
    sources = [BUILTIN] if data is None else ([data] if isinstance(data, str) else list(data))
    files: list[Path] = []
    for src in sources:
        root = SAMPLES_DIR if src == BUILTIN else Path(src).expanduser()
        if not root.exists():
            raise RecipeError(f"image data not found: {src}")
        if root.is_file():
            files.append(root)
            continue
        found = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not found:
            raise RecipeError(f"no images (jpg, png, webp, bmp) under {src}")
        files.extend(found)
    return files


def describe(data: str | list[str] | None) -> str:
    return "built-in sample images (vopt/data/samples, from scikit-image)" if data is None else str(data)


def fingerprint(files: list[Path], preprocess: Preprocess, extra: dict | None = None) -> str:
    """Hash of the file list, their sizes and mtimes, and the preprocessing; cheap enough for every plan."""
    h = hashlib.sha256()
    for f in files:
        st = f.stat()
        h.update(f"{f}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    h.update(json.dumps(preprocess.model_dump(), sort_keys=True).encode())
    h.update(json.dumps(extra or {}, sort_keys=True).encode())
    return h.hexdigest()


def load_image(path: Path, preprocess: Preprocess) -> np.ndarray:
    """One image as a float32 CHW (or HWC) array, exactly as the contract says."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")  # grayscale and RGBA become 3-channel RGB
        return preprocess_pil(img, preprocess)


def preprocess_pil(img, preprocess: Preprocess) -> np.ndarray:
    from PIL import Image

    h, w = preprocess.size
    if preprocess.resize:
        scale = preprocess.resize / min(img.size)
        img = img.resize((max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale))), Image.BILINEAR)
        left = (img.size[0] - w) // 2
        top = (img.size[1] - h) // 2
        img = img.crop((left, top, left + w, top + h))
    else:
        img = img.resize((w, h), Image.BILINEAR)
    if preprocess.dtype == "uint8":  # raw pixels for a graph that preprocesses itself
        raw = np.asarray(img, dtype=np.uint8)
        raw = raw[..., ::-1] if preprocess.channel_order == "BGR" else raw
        return np.ascontiguousarray(raw.transpose(2, 0, 1) if preprocess.layout == "NCHW" else raw)
    arr = np.asarray(img, dtype=np.float32) * preprocess.scale
    if preprocess.channel_order == "BGR":
        arr = arr[..., ::-1]
    arr = (arr - np.asarray(preprocess.mean, np.float32)) / np.asarray(preprocess.std, np.float32)
    if preprocess.layout == "NCHW":
        arr = arr.transpose(2, 0, 1)
    return np.ascontiguousarray(arr, dtype=np.float32)


def sample_files(files: list[Path], samples: int, seed: int) -> list[Path]:
    """`samples` files, cycling through the list when there are fewer, in a seeded order."""
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(files)))
    picked = [files[order[i % len(files)]] for i in range(samples)]
    return picked


def iter_batches(
    files: list[Path], preprocess: Preprocess, batch: int, *, augment_seed: int | None = None
) -> Iterator[np.ndarray]:
    """Stream batches: memory is bounded by the batch, not the data set.
    Repeated files get a seeded random crop/flip so each sample differs."""
    seen: dict[Path, int] = {}
    rng = np.random.default_rng(augment_seed if augment_seed is not None else 0)
    buf: list[np.ndarray] = []
    for f in files:
        n = seen.get(f, 0)
        seen[f] = n + 1
        buf.append(load_image(f, preprocess) if n == 0 else _augmented(f, preprocess, rng))
        if len(buf) == batch:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def _augmented(path: Path, preprocess: Preprocess, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        frac = rng.uniform(0.5, 0.95)
        cw, ch = max(8, int(w * frac)), max(8, int(h * frac))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x0, y0, x0 + cw, y0 + ch))
        if rng.random() < 0.5:
            img = img.transpose(Image.FLIP_LEFT_RIGHT)
        return preprocess_pil(img, preprocess)


def load_batch(data: str | list[str] | None, preprocess: Preprocess, samples: int, seed: int = 0) -> np.ndarray:
    files = sample_files(list_images(data), samples, seed)
    return np.concatenate(list(iter_batches(files, preprocess, batch=max(1, samples), augment_seed=seed)))
