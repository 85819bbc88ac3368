from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.limits import MAX_BATCH, MAX_ITERATIONS, MAX_SECONDS, Threads


class BenchmarkSection(Section):
    batch_sizes: list[Annotated[int, Field(ge=1, le=MAX_BATCH)]] = Field(
        default=[1], min_length=1, max_length=64
    )
    warmup: int = Field(default=3, ge=0, le=MAX_ITERATIONS)
    iterations: int = Field(default=20, ge=1, le=MAX_ITERATIONS)
    seconds: float | None = Field(
        default=None, gt=0, le=MAX_SECONDS, description="Time bound per batch size; overrides iterations."
    )
    threads: Threads | list[Threads] | None = Field(
        default=None,
        description="Intra-op threads for the runtime and PyTorch; a list sweeps them. Runtime default when "
        "omitted.",
    )
    baseline: bool = Field(default=True, description="Also time PyTorch eager, interleaved, for the speedup.")
    profile: bool = Field(
        default=False,
        description="Also profile per op (ORT profiler, OpenVINO PERF_COUNT): "
        "the report's 'Where the time goes' table and chart.",
    )
