from __future__ import annotations

from typing import Literal

from pydantic import Field

from vopt.recipe.sections.base import Section


class PruneSection(Section):
    method: Literal["structured", "unstructured"] = "structured"
    ratio: float = Field(
        default=0.3, gt=0.0, lt=1.0, description="Fraction of channels (or weights) to remove."
    )
    ignore: list[str] = Field(
        default_factory=list, description="Module name globs to leave unpruned (heads)."
    )
    prune_heads: bool = Field(default=True, description="Prune attention heads in ViT-style models.")
    global_pruning: bool = False
