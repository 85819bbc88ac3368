"""Real images through the preprocessing contract: listing, fingerprinting and streaming batches."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vopt.core.artifact import Preprocess
from vopt.errors import RecipeError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
SAMPLES_DIR = Path(__file__).resolve().parent.parent / "data" / "samples"
BUILTIN = "builtin:samples"
# A data folder is walked at plan time (preflight, the cache key's fingerprint). ImageNet's train set is 1.3M
# files in 1,000 folders; a walk past this many entries is a path pointing at the wrong place (`/`, a home
# folder), refused instead of walked for minutes.
MAX_DATA_ENTRIES = 2_000_000
# A data set may hold a few broken files (a truncated download): they are skipped and named in a warning.
# More than this fraction of the distinct files (and always more than one) fails the step instead.
MAX_UNREADABLE_FRACTION = 0.2


class UnreadableImage(Exception):
    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = path, reason


@dataclass
class ImageStats:
    """What a stream of images really was: distinct files, augmented repeats, files skipped as unreadable."""

    samples: int = 0
    distinct: int = 0
    augmented: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # file name -> why

    _seen: set[Path] = field(default_factory=set, repr=False)
    _picks: int = field(default=0, repr=False)

    def record(self, path: Path, *, augmented: bool) -> None:
        """One sample read. A second pass over the same stream (calibration reads it more than once) adds
        nothing."""
        self._picks += 1
        if path not in self._seen:
            self._seen.add(path)
            self.distinct = len(self._seen)
        if self._picks > self.samples:
            self.samples = self._picks
            self.augmented += augmented

    def new_pass(self) -> None:
        self._picks = 0

    def report(self) -> dict[str, object]:
        out: dict[str, object] = {"distinct_images": self.distinct, "augmented_crops": self.augmented}
        if self.skipped:
            out["skipped_images"] = dict(self.skipped)
        return out

    def warnings(self, what: str) -> list[str]:
        """`what` names the use, e.g. 'validate'."""
        notes = []
        if self.augmented:
            notes.append(
                f"{what}: {self.samples} samples from {self.distinct} distinct image"
                f"{'s' if self.distinct != 1 else ''}: {self.augmented} are augmented crops (seeded random "
                "crop and flip) of those; add images for an independent sample"
            )
        if self.skipped:
            names = ", ".join(f"{n} ({why})" for n, why in list(self.skipped.items())[:5])
            more = f" and {len(self.skipped) - 5} more" if len(self.skipped) > 5 else ""
            notes.append(
                f"{what}: skipped {len(self.skipped)} unreadable "
                f"image{'s' if len(self.skipped) > 1 else ''}: "
                f"{names}{more}"
            )
        return notes


def image_files(root: Path) -> list[Path]:
    """Image files under the folder `root`, recursive and sorted: regular files only (reading a FIFO named
    `x.jpg` blocks, a link to /dev/urandom never ends), symlinked folders not followed (as `Path.rglob`).
    Entries that vanish or cannot be listed during the walk (/proc) are skipped. More than MAX_DATA_ENTRIES
    entries is a RecipeError (the caller adds the recipe line)."""
    found: list[Path] = []
    seen = 0
    for folder, dirs, names in os.walk(root):
        seen += len(dirs) + len(names)
        if seen > MAX_DATA_ENTRIES:
            raise RecipeError(
                f"more than {MAX_DATA_ENTRIES:,} files and folders under {root}: point it at the image folder"
            )
        for name in names:
            path = Path(folder) / name
            if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():  # is_file: False on any OSError
                found.append(path)
    return sorted(found)


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
        found = image_files(root)
        if not found:
            raise RecipeError(f"no images (jpg, png, webp, bmp) under {src}")
        files.extend(found)
    return files


def describe(data: str | list[str] | None) -> str:
    return "built-in sample images (vopt/data/samples, from scikit-image)" if data is None else str(data)


def fingerprint(
    files: list[Path], preprocess: Preprocess, extra: dict | None = None, labels: str | None = None
) -> str:
    """Hash of the file list, each file's content, the label files that go with them (`labels`: an explicit
    labels file) and the preprocessing. Content, not size and mtime: an image edited within a second at the
    same size, or a rewritten labels file, changes the key. Each file is read once and its hash remembered
    by inode, size and nanosecond times (vopt.core.filehash), so an unchanged plan reads no image."""
    from vopt.core.filehash import content_hashes
    from vopt.datasets.labels import label_files

    h = hashlib.sha256()
    for f, sha in zip(files, content_hashes(files), strict=True):
        h.update(f"{f}|{sha}\n".encode())
    extras = label_files(files, labels)
    for f, sha in zip(extras, content_hashes(extras), strict=True):
        h.update(f"labels:{f}|{sha}\n".encode())
    h.update(json.dumps(preprocess.model_dump(), sort_keys=True).encode())
    h.update(json.dumps(extra or {}, sort_keys=True).encode())
    return h.hexdigest()


@contextlib.contextmanager
def _no_bombs():
    """Pillow only warns (DecompressionBombWarning) between MAX_IMAGE_PIXELS (89M) and twice that, and then
    decodes the whole image; raise it instead, so such a file is named and skipped before it is decoded."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def _bomb_reason(exc: BaseException) -> str | None:
    from PIL import Image

    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        pixels = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(pixels.group(1)):,} pixels" if pixels else "too many pixels"
        return (
            f"decompression bomb: {size}, over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} "
            "(PIL.Image.MAX_IMAGE_PIXELS); not decoded"
        )
    return None


def header_problem(path: Path) -> str | None:
    """Why Pillow cannot read this image, from its header alone (a truncated body is found, and skipped, at
    load), or None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with _no_bombs(), Image.open(path) as img:
            img.size  # noqa: B018 - parsed from the header
        return None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return _bomb_reason(exc)
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        return str(exc) or type(exc).__name__


def open_rgb(path: Path):
    """The image as 8-bit RGB, the way a viewer shows it: EXIF orientation applied, 16-bit scaled to 8-bit.
    Raises UnreadableImage (with the reason) for a file Pillow cannot decode in full, or one past Pillow's
    decompression-bomb limit."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with _no_bombs(), Image.open(path) as img:
            img = ImageOps.exif_transpose(img)  # a phone photo stored sideways is upright here
            if img.mode.startswith("I;16") or img.mode == "I":
                # 16-bit grayscale: Pillow's convert("RGB") clips at 255 (a white image); scale 0..65535 to
                # 0..255.
                arr = np.asarray(img, dtype=np.float64) / 257.0
                img = Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")
            rgb = img.convert("RGB")  # grayscale and RGBA become 3-channel RGB
            rgb.load()
            return rgb
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnreadableImage(path, _bomb_reason(exc) or type(exc).__name__) from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(path, str(exc) or type(exc).__name__) from None


def load_image(path: Path, preprocess: Preprocess) -> np.ndarray:
    """One image as a float32 CHW (or HWC) array, exactly as the contract says."""
    return preprocess_pil(open_rgb(path), preprocess)


def preprocess_pil(img, preprocess: Preprocess) -> np.ndarray:
    from PIL import Image

    h, w = preprocess.size
    if preprocess.resize:
        scale = preprocess.resize / min(img.size)
        img = img.resize(
            (max(w, round(img.size[0] * scale)), max(h, round(img.size[1] * scale))), Image.BILINEAR
        )
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
    files: list[Path],
    preprocess: Preprocess,
    batch: int,
    *,
    augment_seed: int | None = None,
    stats: ImageStats | None = None,
) -> Iterator[np.ndarray]:
    """Stream batches: memory is bounded by the batch, not the data set.
    Repeated files get a seeded random crop/flip so each sample differs. Unreadable files are skipped and
    recorded in `stats`; past MAX_UNREADABLE_FRACTION of the distinct files the stream fails, naming them."""
    seen: dict[Path, int] = {}
    bad: dict[Path, str] = {}
    if stats is not None:
        stats.new_pass()
    distinct = len(set(files))
    allowed = max(1, int(MAX_UNREADABLE_FRACTION * distinct)) if distinct > 1 else 0
    rng = np.random.default_rng(augment_seed if augment_seed is not None else 0)
    buf: list[np.ndarray] = []
    for f in files:
        if f in bad:
            continue
        n = seen.get(f, 0)
        seen[f] = n + 1
        try:
            buf.append(load_image(f, preprocess) if n == 0 else _augmented(f, preprocess, rng))
            if stats is not None:
                stats.record(f, augmented=n > 0)
        except UnreadableImage as exc:
            bad[f] = exc.reason
            if stats is not None:
                stats.skipped[f.name] = exc.reason
            if len(bad) > allowed:
                _too_many_unreadable(bad, distinct)
            continue
        if len(buf) == batch:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def _too_many_unreadable(bad: dict[Path, str], distinct: int) -> None:
    names = "; ".join(f"{p} ({why})" for p, why in list(bad.items())[:5])
    raise RecipeError(
        f"{len(bad)} of {distinct} image files cannot be read (at most "
        f"{MAX_UNREADABLE_FRACTION:.0%} may be skipped): {names}"
    )


def _augmented(path: Path, preprocess: Preprocess, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    img = open_rgb(path)
    w, h = img.size
    frac = rng.uniform(0.5, 0.95)
    cw, ch = max(8, int(w * frac)), max(8, int(h * frac))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    img = img.crop((x0, y0, x0 + cw, y0 + ch))
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return preprocess_pil(img, preprocess)


def load_batch(
    data: str | list[str] | None, preprocess: Preprocess, samples: int, seed: int = 0
) -> np.ndarray:
    files = sample_files(list_images(data), samples, seed)
    batches = list(iter_batches(files, preprocess, batch=max(1, samples), augment_seed=seed))
    if not batches:
        raise RecipeError(f"no readable images in {describe(data)}")
    return np.concatenate(batches)
