"""Model sources: each turns the recipe's `model:` section into a torch module (or an ONNX file)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vopt.models.families.base import Family
    from vopt.recipe.sections.model import ModelSection


@dataclass
class LoadedModel:
    module: Any  # torch.nn.Module in eval mode (None for ONNX sources)
    family: Family
    task: str
    labels: list[str] | None = None
    random_weights: bool = False
    onnx_path: Path | None = None  # set by sources that start from ONNX
    notes: list[str] = field(default_factory=list)


class Source:
    name: str = ""

    def fingerprint(self, spec: ModelSection) -> dict[str, Any]:
        """Cache-key material for local files the source reads (size and mtime, cheap)."""
        out = {}
        for attr in ("path", "weights", "id"):
            value = getattr(spec, attr, None)
            if isinstance(value, str) and Path(value).expanduser().exists():
                p = Path(value).expanduser()
                st = p.stat()
                out[attr] = f"{p.resolve()}|{st.st_size}|{int(st.st_mtime)}"
        return out

    def load(self, spec: ModelSection) -> LoadedModel:
        raise NotImplementedError
