"""Calibration data: image folders through the preprocessing contract, .npy/.npz tensors, synthetic tensors
(only when asked), or a pipeline component's feeds recorded while the pipeline ran on prompts (named inputs;
vopt.quant.feeds). Always streamed in batches, seeded, and fingerprinted."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
    time: image batches (arrays), or for kind `feeds` one recorded call's named inputs (dicts) at a time."""

    def __init__(
        self,
        section: CalibrationSection,
        preprocess: Preprocess,
        input_shape: list[int],
        candidates: list[Path] | None = None,
        feeds_from: dict[str, Any] | None = None,
        component: str | None = None,
    ):
        self.section = section
        self.candidates = candidates  # the images it may use (the calibration part of a split folder)
        self.preprocess = preprocess
        self.input_shape = list(input_shape)
        # A pipeline's component: what its feeds are recorded from (vopt.quant.feeds.feeds_from), and the
        # feeds themselves once the quantize step recorded them (`use_feeds`).
        self.feeds_from, self.component = feeds_from, component
        self.feeds: list[dict[str, np.ndarray]] | None = None
        self.kind = "feeds" if feeds_from is not None else data_kind(section)
        self._files: list[Path] | None = None
        from vopt.datasets.images import ImageStats

        self.stats = (
            ImageStats()
        )  # images only: distinct, augmented and skipped files (filled as they stream)

    # -- what it is ---------------------------------------------------------------------------
    def use_feeds(self, feeds: list[dict[str, np.ndarray]]) -> None:
        """The recorded calls this set yields (kind `feeds`)."""
        self.feeds = list(feeds)

    def files(self) -> list[Path]:
        if self._files is None:
            if self.kind in ("synthetic", "feeds"):
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
        if self.kind == "feeds":
            from vopt.quant.feeds import describe

            assert self.feeds_from is not None
            calls = self.count() if self.feeds is not None else None
            return describe(self.feeds_from, self.component, "calibration", calls)
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
        if self.kind == "feeds":  # the recipe data the feeds are recorded from, not the arrays
            from vopt.quant.feeds import fingerprint as feeds_fingerprint

            return feeds_fingerprint(self.feeds_from or {}, {**extra, "component": self.component})
        h = hashlib.sha256(json.dumps(extra, sort_keys=True).encode())
        for f in self.files():
            with f.open("rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    h.update(chunk)
        return h.hexdigest()

    def count(self) -> int:
        if self.kind == "feeds":  # recorded calls (each a whole batch: a guided UNet call has 2 rows)
            return self.section.samples if self.feeds is None else min(self.section.samples, len(self.feeds))
        if self.kind == "tensors":
            return min(self.section.samples, sum(len(a) for a in self._tensor_arrays()))
        return self.section.samples

    # -- the data -----------------------------------------------------------------------------
    def batches(self, limit: int | None = None) -> Iterator[Any]:
        """Batches of at most `section.batch` samples; `limit` caps the number of samples. Kind `feeds`: one
        recorded call's inputs (a dict) per batch, `limit` calls at most."""
        total = min(self.count(), limit) if limit else self.count()
        batch = self.section.batch
        if self.kind == "feeds":
            if self.feeds is None:
                raise RuntimeError("calibration feeds were not recorded yet (CalibrationSet.use_feeds)")
            yield from self.feeds[:total]
        elif self.kind == "synthetic":
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


def split_static(batches: Iterator[Any], static_batch: int | None) -> Iterator[Any]:
    """Cut batches to a model's fixed batch size (padding the last one by repetition); a batch of named
    inputs (a dict) is cut along its shared batch axis."""
    from vopt.runtimes.base import fixed_batch, pad_to, static_chunks

    for b in batches:
        if isinstance(b, dict):
            static = fixed_batch(static_batch)
            n = rows(b)
            if not static or n == static:
                yield b
                continue
            for start in range(0, n, static):
                yield {k: pad_to(v[start : start + static], static) for k, v in b.items()}
        else:
            for chunk, _ in static_chunks(b, static_batch):
                yield chunk


def rows(batch: Any) -> int:
    """Samples in a batch: an array's first dim, or the shared batch axis of named inputs."""
    if isinstance(batch, dict):
        return len(next(iter(batch.values()))) if batch else 0
    return len(batch)


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
        n = 1 if isinstance(b, dict) else len(b)  # feeds count by recorded call
        self.seen += n
        self.advance(n)
        return dict(b) if isinstance(b, dict) else {self.input_name: b}

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
