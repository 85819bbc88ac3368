from __future__ import annotations

from typing import Annotated

from pydantic import Field

from vopt.recipe.sections.base import Section


class BenchmarkSection(Section):
    batch_sizes: list[Annotated[int, Field(ge=1)]] = Field(default=[1], min_length=1)
    warmup: int = Field(default=3, ge=0)
    iterations: int = Field(default=20, ge=1)
    seconds: float | None = Field(default=None, description="Time bound per batch size; overrides iterations.")
    threads: int | list[int] | None = Field(
        default=None, description="Intra-op threads for the runtime and PyTorch; a list sweeps them. Runtime default when omitted."
    )
    baseline: bool = Field(default=True, description="Also time PyTorch eager, interleaved, for the speedup.")
    profile: bool = Field(default=False, description="Also profile per op (ORT profiler, OpenVINO PERF_COUNT): "
                          "the report's 'Where the time goes' table and chart.")
