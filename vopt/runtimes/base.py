"""What every runtime gives back: a Runner (or Unavailable, and why), and the static-batch helpers.
Nothing here imports a target: targets and stages import the runtimes, never the other way round."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where arrays are handled: target modules import Runner cheaply
    import numpy as np


@dataclass
class Runner:
    """Runs an artifact on its real runtime: inputs by name in, outputs by name out.

    A context manager in the Polygraphy style: the session is live from construction (`activate` is a no-op
    kept for symmetry), `infer(feeds)` runs it, and leaving the `with` block (or `deactivate()`) releases
    what the runtime holds (e.g. a session in the shared browser). Releasing twice is harmless."""

    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]
    runtime: str
    info: dict[str, Any] = field(default_factory=dict)
    on_close: Callable[[], None] | None = None
    _closed: bool = field(default=False, repr=False)

    def __call__(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(feeds)

    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.run(feeds)

    def activate(self) -> Runner:
        return self

    def deactivate(self) -> None:
        if not self._closed:
            self._closed = True
            if self.on_close is not None:
                self.on_close()

    close = deactivate

    def __enter__(self) -> Runner:
        return self.activate()

    def __exit__(self, *exc: object) -> None:
        self.deactivate()


@dataclass
class Unavailable:
    """No runtime for this artifact here, and why."""

    reason: str


def pad_to(chunk: np.ndarray, batch: int) -> np.ndarray:
    """`chunk` grown to `batch` rows by repeating its last row (a static-batch artifact takes no other
    size)."""
    import numpy as np

    if len(chunk) >= batch:
        return chunk
    return np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])


def fixed_batch(static_batch: object) -> int | None:
    """A static batch size, or None for an open one: a size of 0 or less is open (PaddlePaddle's ONNX files
    write `dim_value: -1`), never a loop step (`range(0, n, -1)` runs no batch at all)."""
    return static_batch if isinstance(static_batch, int) and static_batch > 0 else None


def static_chunks(batch: np.ndarray, static_batch: int | None) -> Iterator[tuple[np.ndarray, int]]:
    """(chunk padded to the static batch, real rows in it) for each piece of `batch`; the batch as is without
    one."""
    static_batch = fixed_batch(static_batch)
    if not static_batch:
        yield batch, len(batch)
        return
    for i in range(0, len(batch), static_batch):
        chunk = batch[i : i + static_batch]
        yield pad_to(chunk, static_batch), len(chunk)


def run_batches(
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    input_name: str,
    batches: list[np.ndarray],
    static_batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Run every batch (split and padded to the artifact's static batch size if it has one), concatenated per
    output."""
    import numpy as np

    collected: dict[str, list[np.ndarray]] = {}
    for batch in batches:
        for chunk, n in static_chunks(batch, static_batch):
            out = run({input_name: chunk})
            for k, v in out.items():
                collected.setdefault(k, []).append(np.asarray(v)[:n] if n < len(chunk) else v)
    return {k: np.concatenate(v) for k, v in collected.items()}


def run_feeds(
    run: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    feeds: dict[str, np.ndarray],
    static_batch: int | None = None,
) -> dict[str, np.ndarray]:
    """Run named inputs that share a batch axis, split and padded to a static batch when there is one; the
    outputs concatenated per name. Inputs without a batch axis (0-d) go to every call as they are."""
    import numpy as np

    batched = {k: v for k, v in feeds.items() if np.ndim(v) > 0}
    n = len(next(iter(batched.values()))) if batched else 1
    static_batch = fixed_batch(static_batch)
    if not static_batch or not batched:
        return run(feeds)
    collected: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, static_batch):
        part = {k: pad_to(v[start : start + static_batch], static_batch) for k, v in batched.items()}
        real = min(static_batch, n - start)
        out = run({**feeds, **part})
        for k, v in out.items():
            collected.setdefault(k, []).append(np.asarray(v)[:real])
    return {k: np.concatenate(v) for k, v in collected.items()}


class Feeds:
    """Named inputs that share a batch axis (a component's recorded calls, e.g. a UNet's sample, timestep and
    text states), indexed and counted by rows like an image batch: `feeds[idx]` and `len(feeds)` are what
    image arrays give the quantize check and its loops."""

    def __init__(self, arrays: dict[str, np.ndarray]):
        self.arrays = dict(arrays)

    @classmethod
    def concat(cls, parts: list[dict[str, np.ndarray]]) -> Feeds:
        import numpy as np

        return cls({k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]})

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values()))) if self.arrays else 0

    def __getitem__(self, idx: Any) -> Feeds:
        return Feeds({k: v[idx] for k, v in self.arrays.items()})

    def padded(self, batch: int) -> Feeds:
        return Feeds({k: pad_to(v, batch) for k, v in self.arrays.items()})

    @property
    def names(self) -> list[str]:
        return list(self.arrays)


def run_images(runner: Runner, images: np.ndarray | Feeds) -> dict[str, np.ndarray]:
    """All `images` through a runner that names its input and static batch in `info` (the ORT and OpenVINO
    ones); Feeds go in by name."""
    if isinstance(images, Feeds):
        return run_feeds(runner, images.arrays, runner.info.get("static_batch"))
    return run_batches(
        runner, runner.info["input_name"], [images], static_batch=runner.info.get("static_batch")
    )
