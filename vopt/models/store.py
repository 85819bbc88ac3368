"""Torch modules in the cache without pickles: the weights as safetensors (which cannot run code) plus a
JSON reference that rebuilds the architecture, the way the recipe built it (hf config, `arch:` factory with
kwargs, timm / torchvision name), and the structural edits later steps made (folded BatchNorms, pruned
channels and heads). Loading rebuilds the module and loads the weights strictly, so a mismatch is an error,
never a silently different model. safetensors files are byte-reproducible: same weights, same bytes."""

from __future__ import annotations

import copy
import json
from collections import OrderedDict
from pathlib import Path
from typing import Any

from vopt.errors import BuildError

FORMAT = "safetensors"


def save(model: Any, path: Path | str) -> None:
    """The module's state_dict as safetensors (tied tensors are stored once per name, contiguous)."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": "pt"})


def load(path: Path | str, reference: dict[str, Any]) -> Any:
    """Rebuild the architecture from `reference`, replay its edits and load the weights (strict)."""
    import torch
    from safetensors.torch import load_file

    model = build(reference["build"])
    for edit in reference.get("edits", []):
        apply_edit(model, edit)
    state = load_file(str(path))
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = " ".join(str(exc).strip().splitlines()[:3])[:400]
        raise BuildError(
            f"the cached weights {Path(path).name} do not fit the rebuilt architecture: {first}", stage="load"
        ) from None
    if reference.get("channels_last"):
        model.to(memory_format=torch.channels_last)
    return model.eval()


# transformers architectures this process already built, by reference. One build loads the same architecture
# in several steps (fuse twice, export, validate, benchmark), and each transformers build re-runs the model's
# weight init: 0.7 s for ResNet-50 here, and more for larger models; a deep copy takes a tenth of that. Only
# hf references: factory and pickled modules are the user's code and are built each time, under the trust
# their own recipe grants.
_TEMPLATES: OrderedDict[str, Any] = OrderedDict()
_TEMPLATES_KEPT = 2


def build(ref: dict[str, Any]) -> Any:
    """The architecture, with throwaway initial weights (load() overwrites every one). A reference comes
    from the cache, which is data: it may name only what the recipe being built names."""
    from vopt.models.sources.factory import reference_problem

    why = reference_problem(ref)
    if why:
        raise BuildError(f"refusing to rebuild the cached model: {why}", stage="load")
    if ref["kind"] != "hf":
        return _build(ref)
    key = json.dumps(ref, sort_keys=True, default=str)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = _build(ref)
        while len(_TEMPLATES) > _TEMPLATES_KEPT:
            _TEMPLATES.popitem(last=False)
    _TEMPLATES.move_to_end(key)
    return copy.deepcopy(_TEMPLATES[key])


def _build(ref: dict[str, Any]) -> Any:
    from vopt.models.families.lookup import family_for, get_family

    kind = ref["kind"]
    family = (
        get_family(ref["family"])
        if ref.get("family") not in (None, "generic")
        else family_for(None, ref.get("task"))
    )
    if kind == "hf":
        import transformers
        from transformers import CONFIG_MAPPING

        config_cls = (
            getattr(transformers, ref.get("config_class") or "", None)
            or CONFIG_MAPPING[ref["config"]["model_type"]]
        )
        cls = getattr(transformers, ref["class"], None)
        if not _model_class(cls) or not (
            isinstance(config_cls, type) and issubclass(config_cls, transformers.PretrainedConfig)
        ):
            raise BuildError(
                f"refusing to rebuild the cached model: {ref['class']!r} / {ref.get('config_class')!r} "
                "are not a transformers model class and its config class",
                stage="load",
            )
        config = config_cls.from_dict(ref["config"])
        from vopt.models.sources.hf import _from_config

        model = _from_config(cls, config).eval()
        return family.prepare(model)
    if kind == "factory":
        from vopt.models.sources.factory import build_module

        model = build_module(ref["arch"], ref.get("kwargs", {}))
    elif kind == "timm":
        from vopt.models.sources.hub import import_hub

        model = import_hub("timm").create_model(ref["id"], pretrained=False, **ref.get("kwargs", {}))
    elif kind == "torchvision":
        from vopt.models.sources.hub import import_hub

        model = import_hub("torchvision").models.get_model(ref["id"], weights=None, **ref.get("kwargs", {}))
    elif kind == "trusted-file":
        import torch

        from vopt.models.sources.factory import granted_trust

        if not granted_trust():  # the reference itself cannot grant trust: only the recipe being built can
            raise BuildError(
                f"the cached model was built from the pickled module {ref['path']}, which loads "
                "only with `trust: true` in the recipe",
                stage="load",
            )
        model = torch.load(ref["path"], map_location="cpu", weights_only=False)
    else:
        raise BuildError(f"the cached model has an unknown architecture reference '{kind}'", stage="load")
    model.eval()
    model = family.prepare(model)
    model._vopt_positional = True
    return model


def diff(before: Any, after: Any) -> dict[str, Any] | None:
    """The structural edits that turn `before` (same architecture, any weights) into `after`: modules
    replaced by Identity, tensors added or reshaped, and changed plain attributes (channel counts, heads)."""
    import torch

    old_modules, new_modules = dict(before.named_modules()), dict(after.named_modules())
    identity, attrs = [], {}
    for name, mod in new_modules.items():
        old = old_modules.get(name)
        if old is None:
            raise BuildError(
                f"cannot store the edited model: module '{name}' ({type(mod).__name__}) is new", stage="store"
            )
        if type(mod) is not type(old):
            if isinstance(mod, torch.nn.Identity):
                identity.append(name)
                continue
            raise BuildError(
                f"cannot store the edited model: module '{name}' changed from {type(old).__name__} "
                f"to {type(mod).__name__}",
                stage="store",
            )
        changed = {
            k: v
            for k, v in vars(mod).items()
            if not k.startswith("_") and k != "training" and _plain(v) and vars(old).get(k) != v
        }
        if changed:
            attrs[name] = json.loads(json.dumps(changed))
    old_state = before.state_dict()
    params = {n for n, _ in after.named_parameters()}
    tensors = {
        n: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."), "param": n in params}
        for n, t in after.state_dict().items()
        if n not in old_state or tuple(old_state[n].shape) != tuple(t.shape) or old_state[n].dtype != t.dtype
    }
    if not (identity or attrs or tensors):
        return None
    return {"identity": identity, "tensors": tensors, "attrs": attrs}


def _model_class(cls: Any) -> bool:
    """A transformers model class, or one of its Auto classes (which pick one from the config)."""
    import transformers

    if not isinstance(cls, type):
        return False
    if issubclass(cls, transformers.PreTrainedModel):
        return True
    from transformers.models.auto.auto_factory import _BaseAutoModelClass

    return issubclass(cls, _BaseAutoModelClass)


def apply_edit(model: Any, edit: dict[str, Any]) -> None:
    import torch

    from vopt.models.sources.factory import edits_problem

    why = edits_problem({"edits": [edit]})
    if why:
        raise BuildError(f"refusing to replay the cached model's edits: {why}", stage="load")

    for name in edit.get("identity", []):
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, torch.nn.Identity())
    for name, spec in edit.get("tensors", {}).items():
        owner, _, leaf = name.rpartition(".")
        mod = model.get_submodule(owner) if owner else model
        empty = torch.empty(spec["shape"], dtype=getattr(torch, spec["dtype"]))
        if spec["param"]:
            setattr(mod, leaf, torch.nn.Parameter(empty, requires_grad=False))
        else:
            mod.register_buffer(leaf, empty)
    for name, changed in edit.get("attrs", {}).items():
        mod = model.get_submodule(name) if name else model
        for key, value in changed.items():
            setattr(mod, key, tuple(value) if isinstance(getattr(mod, key, None), tuple) else value)


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, (tuple, list)) and all(isinstance(v, (bool, int, float, str)) for v in value)


def edited(
    reference: dict[str, Any], before: Any, after: Any, *, channels_last: bool = False
) -> dict[str, Any]:
    """The reference of `after`, a structurally edited copy of the module `before` was rebuilt from."""
    change = diff(before, after)
    out = {**reference, "edits": [*reference.get("edits", []), *([change] if change else [])]}
    if channels_last:
        out["channels_last"] = True
    else:
        out.pop("channels_last", None)
    return out
