"""Calibration data: image folders through the preprocessing contract, .npy/.npz tensors, or synthetic
tensors (only when asked). Always streamed in batches, seeded, and fingerprinted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from vopt.core.artifact import Preprocess
from vopt.errors import RecipeError
from vopt.recipe.sections.quantize import CalibrationSection

TENSOR_SUFFIXES = {".npy", ".npz"}


def _sources(data: str | list[str] | None) -> list[str]:
    return [] if data is None else ([data] if isinstance(data, str) else list(data))


def data_kind(section: CalibrationSection) -> str:
    if section.synthetic:
        return "synthetic"
    srcs = _sources(section.data)
    tensors = [s for s in srcs if Path(s).suffix.lower() in TENSOR_SUFFIXES]
    if tensors and len(tensors) != len(srcs):
        raise RecipeError("quantize.calibration.data: mix of image folders and .npy/.npz files; use one kind")
    return "tensors" if tensors else "images"


class CalibrationSet:
    """One calibration data set. `batches()` can be called more than once and yields the same data each
    time."""

    def __init__(
        self,
        section: CalibrationSection,
        preprocess: Preprocess,
        input_shape: list[int],
        candidates: list[Path] | None = None,
    ):
        self.section = section
        self.candidates = candidates  # the images it may use (the calibration part of a split folder)
        self.preprocess = preprocess
        self.input_shape = list(input_shape)
        self.kind = data_kind(section)
        self._files: list[Path] | None = None
        from vopt.datasets.images import ImageStats

        self.stats = (
            ImageStats()
        )  # images only: distinct, augmented and skipped files (filled as they stream)

    # -- what it is ---------------------------------------------------------------------------
    def files(self) -> list[Path]:
        if self._files is None:
            if self.kind == "synthetic":
                self._files = []
            elif self.kind == "tensors":
                self._files = [Path(s).expanduser() for s in _sources(self.section.data)]
                for f in self._files:
                    if not f.is_file():
                        raise RecipeError(f"quantize.calibration.data: file not found: {f}")
            else:
                from vopt.datasets.images import list_images, sample_files

                pool = self.candidates if self.candidates is not None else list_images(self.section.data)
                self._files = sample_files(pool, self.section.samples, self.section.seed)
        return self._files

    def describe(self) -> str:
        if self.kind == "synthetic":
            return "SYNTHETIC random tensors (not real data: ranges may not match real inputs)"
        if self.kind == "tensors":
            return ", ".join(str(f) for f in self.files())
        from vopt.datasets.images import describe

        return describe(self.section.data)

    def fingerprint(self) -> str:
        s = self.section
        extra = {
            "kind": self.kind,
            "samples": s.samples,
            "seed": s.seed,
            "batch": s.batch,
            "shape": self.input_shape,
        }
        if self.kind == "images":
            from vopt.datasets.images import fingerprint

            return fingerprint(self.files(), self.preprocess, extra)
        h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
        for f in self.files():
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()

    def count(self) -> int:
        if self.kind == "tensors":
            return min(self.section.samples, sum(len(a) for a in self._tensor_arrays()))
        return self.section.samples

    # -- the data -----------------------------------------------------------------------------
    def batches(self, limit: int | None = None) -> Iterator[np.ndarray]:
        """Batches of at most `section.batch` samples; `limit` caps the number of samples."""
        total = min(self.count(), limit) if limit else self.count()
        batch = self.section.batch
        if self.kind == "synthetic":
            rng = np.random.default_rng(self.section.seed)
            for start in range(0, total, batch):
                n = min(batch, total - start)
                yield rng.standard_normal((n, *self.input_shape[1:]), dtype=np.float32)
        elif self.kind == "tensors":
            yield from _rebatch(self._tensor_rows(), batch, total)
        else:
            from vopt.datasets.images import iter_batches

            files = self.files()[:total]
            yield from iter_batches(
                files, self.preprocess, batch, augment_seed=self.section.seed, stats=self.stats
            )

    def _tensor_arrays(self) -> Iterator[np.ndarray]:
        for f in self.files():
            if f.suffix.lower() == ".npy":
                arr = np.load(f, mmap_mode="r")  # memory-mapped: rows are read as they are used
                yield arr if arr.ndim == len(self.input_shape) else arr[None]
            else:
                with np.load(f) as z:
                    for key in sorted(z.files):
                        arr = z[key]
                        yield arr if arr.ndim == len(self.input_shape) else arr[None]

    def _tensor_rows(self) -> Iterator[np.ndarray]:
        for arr in self._tensor_arrays():
            if list(arr.shape[1:]) != self.input_shape[1:]:
                raise RecipeError(
                    f"quantize.calibration.data: tensors of shape {list(arr.shape)} do not fit the model "
                    "input "
                    f"{self.input_shape} (expected [N, {', '.join(map(str, self.input_shape[1:]))}])"
                )
            for i in range(len(arr)):
                yield np.asarray(arr[i], dtype=np.float32)


def _rebatch(rows: Iterator[np.ndarray], batch: int, total: int) -> Iterator[np.ndarray]:
    buf: list[np.ndarray] = []
    for i, row in enumerate(rows):
        if i >= total:
            break
        buf.append(row)
        if len(buf) == batch:
            yield np.stack(buf)
            buf = []
    if buf:
        yield np.stack(buf)


def split_static(batches: Iterator[np.ndarray], static_batch: int | None) -> Iterator[np.ndarray]:
    """Cut batches to a model's fixed batch size (padding the last one by repetition)."""
    from vopt.runtimes.base import static_chunks

    for b in batches:
        for chunk, _ in static_chunks(b, static_batch):
            yield chunk


class OrtReader:
    """An onnxruntime CalibrationDataReader over a CalibrationSet, streaming and counting samples."""

    def __init__(
        self,
        calib: CalibrationSet,
        input_name: str,
        static_batch: int | None,
        advance: Callable[[int], None] | None = None,
        limit: int | None = None,
    ):
        self.calib, self.input_name, self.static_batch = calib, input_name, static_batch
        self.advance = advance or (lambda n=1: None)
        self.limit = limit
        self.seen = 0
        self._it: Iterator[np.ndarray] | None = None

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = split_static(self.calib.batches(self.limit), self.static_batch)
        b = next(self._it, None)
        if b is None:
            return None
        self.seen += len(b)
        self.advance(len(b))
        return {self.input_name: b}

    def rewind(self) -> None:
        self._it = None
        self.seen = 0

    def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
        self.rewind()
        while (item := self.get_next()) is not None:
            yield item


class _ListReader:
    def __init__(self, items: list[dict[str, np.ndarray]]):
        self.items = iter(items)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.items, None)


def chunked_reader(reader: OrtReader, chunk: int) -> Iterator[_ListReader]:
    """Readers of at most `chunk` batches each: ORT's histogram calibrators keep every output of one
    collect_data call in memory, so calling it once per chunk keeps memory bounded by the chunk."""
    reader.rewind()
    while True:
        items: list[dict[str, np.ndarray]] = []
        while len(items) < chunk and (item := reader.get_next()) is not None:
            items.append(item)
        if not items:
            return
        yield _ListReader(items)
