"""Model sources: each turns the recipe's `model:` section into a torch module (or an ONNX file)."""

from __future__ import annotations

import hashlib
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
    # Fixed-graph sources (torchscript, exported) keep their file as is: module_format says how to reload it.
    module_file: Path | None = None
    module_format: str = "pickle"
    notes: list[str] = field(default_factory=list)
    # How to rebuild the module's architecture without a pickle (see vopt.models.store); set by the source.
    reference: dict[str, Any] | None = None
    # A model made of components (a diffusion pipeline, several ONNX files): each one loaded on its own, in
    # the order its family runs them; `component` is this one's name when it is one of them.
    components: dict[str, LoadedModel] = field(default_factory=dict)
    component: str | None = None
    # Facts the source knows that later steps need (a pipeline's scheduler config, its tokenizer): kept in the
    # load artifact's metadata.
    meta: dict[str, Any] = field(default_factory=dict)


class Source:
    name: str = ""
    # The artifact format the load step makes from this source (a registered format name): a PyTorch module,
    # which fuse, prune and export take, unless the source starts from a finished graph.
    output_format: str = "torch-module"
    # (import name, pip extra) pairs the source needs beyond the core; checked before any step runs.
    requires: tuple[tuple[str, str], ...] = ()
    # vopt's own `module:callable` builders this source names in its architecture references (with data
    # kwargs): a cached reference may name them, besides what the recipe names (vopt.models.sources.factory).
    builders: tuple[str, ...] = ()

    def trust_use(self, spec: ModelSection) -> str | None:
        """What `trust: true` lets this source do with the recipe's file (the manifest says it), or None."""
        return None

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time checks only the source can make (a pipeline folder's layout against the recipe): raise a
        RecipeError whose message starts with the key path, so it is reported at the recipe's line."""

    def plan_notes(self, recipe: Any) -> list[str]:
        """What the source knows of the model before it is built, for `vopt plan` (e.g. a head that needs no
        NMS). Cheap: no model is built."""
        return []

    def fingerprint(self, spec: ModelSection) -> dict[str, Any]:
        """Cache-key material for local files the source reads (size and mtime, cheap)."""
        out = {}
        for attr in ("path", "weights", "id"):
            value = getattr(spec, attr, None)
            if isinstance(value, str) and Path(value).expanduser().exists():
                out[attr] = _stat_fingerprint(Path(value).expanduser())
        return out

    def load(self, spec: ModelSection) -> LoadedModel:
        raise NotImplementedError


def _stat_fingerprint(path: Path) -> str:
    """Size and mtime (ns) of a file, or of every file under a directory (a save_pretrained folder):
    editing config.json inside it must change the key, and no file is read."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    parts = [str(path.resolve())]
    for f in files:
        st = f.stat()
        parts.append(f"{f.relative_to(path) if f != path else f.name}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def load_state_dict(path: Path, *, what: str = "model.weights") -> dict[str, Any]:
    """A state_dict from a .safetensors or torch checkpoint, safely (weights_only=True).
    Unwraps the usual {'state_dict': ...} / {'model': ...} containers and DataParallel's 'module.' prefix."""
    import torch

    path = Path(path).expanduser()
    if not path.is_file():
        from vopt.errors import RecipeError

        raise RecipeError(f"{what}: checkpoint not found: {path}")
    from vopt.errors import BuildError, first_line

    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle refusals, truncated zips, foreign formats
        first = first_line(exc)
        hint = (
            " (it holds pickled objects: a full module needs `trust: true`)"
            if "weights_only" in str(exc)
            else ""
        )
        raise BuildError(f"cannot read checkpoint {path}{hint}: {first}", stage="load") from None
    for key in ("state_dict", "model_state_dict", "model", "module"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise BuildError(f"checkpoint {path} is not a state_dict of tensors", stage="load")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module.") :]: v for k, v in state.items()}
    return state
