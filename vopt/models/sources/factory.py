"""`module:factory` strings from recipes, resolved with errors that say what is wrong; and the rule for what
may run code during a build.

The rule: a recipe is code (it lives in the team's repository and runs in its CI, like a Makefile), so it may
name any Python callable (`model.arch`, with `kwargs`). The files it points at (checkpoints, ONNX, `.pt2`,
data folders) and every cache entry are data: they never run code unless the recipe says `trust: true` for
that file. So a cached step rebuilds only what the recipe being built names (`reference_problem`): a cached
architecture reference that names another callable, other arguments or another file is refused, and the
entry is rebuilt."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, RecipeError


@dataclass(frozen=True)
class BuildPolicy:
    """What the recipe being built allows: its directory (for its own modules), its `model.trust`, and its
    `model:` section (what a cached reference may name)."""

    recipe_dir: Path | None
    trust: bool
    model: Any = None  # the recipe's ModelSection, or None outside a build


_policies: list[BuildPolicy] = []  # set by the engine for the build in progress


@contextlib.contextmanager
def build_policy(recipe_dir: Path | None, trust: bool, model: Any = None) -> Iterator[None]:
    """During a build, the recipe's directory provides user modules (and is on sys.path for them), and the
    recipe's `model:` section is the only thing that names code or grants trust (a cached reference
    cannot)."""
    path = Path(recipe_dir).resolve() if recipe_dir is not None else None
    _policies.append(BuildPolicy(path, bool(trust), model))
    try:
        yield
    finally:
        _policies.pop()


def current_policy() -> BuildPolicy | None:
    return _policies[-1] if _policies else None


def granted_trust() -> bool:
    policy = current_policy()
    return bool(policy and policy.trust)


def _search_path() -> None:
    dirs = [os.getcwd(), *(str(p.recipe_dir) for p in _policies if p.recipe_dir is not None)]
    for where in dirs:
        if where not in sys.path:
            sys.path.insert(0, where)  # a recipe's own module next to it, as `python -m` would find it


def import_factory(spec: str | None, key: str = "model.arch") -> Any:
    """The callable a recipe names. The recipe is code: any importable callable may be named (there is no
    list of refused modules, which could only ever be partial)."""
    if not spec:
        raise RecipeError(
            f"{key}: required: a `module:factory` that builds the model, e.g. mypkg.nets:build_net"
        )
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RecipeError(f"{key}: expected `module:factory`, got '{spec}'")
    _search_path()
    try:
        module = importlib.import_module(module_name)
        if _is_user_code(module):
            module = importlib.reload(module)  # pick up edits made since an earlier build in this process
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RecipeError(
                f"{key}: cannot import module '{module_name}' (no module named '{exc.name}'; "
                "is it on PYTHONPATH or in the working directory?)"
            ) from None
        raise BuildError(f"{key}: importing '{module_name}' failed: {exc}", stage="load") from None
    except Exception as exc:
        raise BuildError(
            f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}", stage="load"
        ) from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            from vopt.suggest import did_you_mean

            raise RecipeError(
                f"{key}: module '{module_name}' has no '{attr}'{did_you_mean(part, names)}; "
                f"callables there: {', '.join(names[:12]) or 'none'}"
            )
        obj = getattr(obj, part)
    if not callable(obj):
        raise RecipeError(f"{key}: '{spec}' is not callable")
    return obj


def _is_user_code(module: Any) -> bool:
    """A module of the user's (reloaded so an edit between builds in one process is seen); never vopt's own,
    whose editable install lies outside sys.prefix: reloading one makes new classes, and a component's module
    rebuilt from its reference would then differ in type from the loaded one."""
    if module.__name__.partition(".")[0] == "vopt":
        return False
    path = getattr(module, "__file__", None)
    return bool(path) and not str(path).startswith((sys.prefix, sys.base_prefix))


def build_module(spec: str | None, kwargs: dict[str, Any], key: str = "model.arch") -> Any:
    import torch

    factory = import_factory(spec, key)
    try:
        model = factory(**kwargs)
    except TypeError as exc:
        raise RecipeError(f"model.kwargs: {spec} rejected the arguments: {exc}") from None
    except Exception as exc:
        raise BuildError(f"{spec}(**kwargs) failed: {type(exc).__name__}: {exc}", stage="load") from None
    if not isinstance(model, torch.nn.Module):
        raise BuildError(f"{spec} returned {type(model).__name__}, not a torch.nn.Module", stage="load")
    return model


def _canon(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))


# transformers class names in an hf reference: a name, looked up in transformers and checked to be a model
# (or config) class before it is built.
_CLASS_NAME = re.compile(r"[A-Z][A-Za-z0-9]{0,99}")


def reference_problem(build: Any) -> str | None:
    """Why a cached architecture reference (`module_ref.build`) may not be rebuilt in this build, or None.
    It may name only what the recipe being built names: its own `arch:` and `kwargs`, a vopt builder its
    source declares (`Source.builders`), its timm/torchvision model, its trusted file; an hf reference names
    transformers classes by name (checked to be model classes when built). Reads no file, imports nothing
    heavy: it runs on every cache hit."""
    if not isinstance(build, dict):
        return "its architecture reference is not a mapping"
    kind = build.get("kind")
    if kind == "hf":
        for field in ("class", "config_class"):
            name = build.get(field)
            if field == "config_class" and name is None:
                continue
            if not isinstance(name, str) or not _CLASS_NAME.fullmatch(name):
                return f"its hf reference names {name!r} as its transformers {field}"
        return None
    policy = current_policy()
    model = policy.model if policy else None
    if model is None:
        return f"a `{kind}` architecture reference is rebuilt only in a build of the recipe that names it"
    if kind == "factory":
        arch, kwargs = build.get("arch"), build.get("kwargs", {})
        if arch == model.arch and _canon(kwargs) == _canon(model.kwargs):
            return None
        from vopt.registry import get_source

        if arch in getattr(get_source(model.source), "builders", ()):
            return None  # vopt's own builder, which the recipe's source uses (data kwargs, no user code)
        return (
            f"its architecture reference names {arch!r} with kwargs {_canon(kwargs)[:200]}, which the recipe "
            f"does not (model.arch: {model.arch!r}, kwargs {_canon(model.kwargs)[:200]})"
        )
    if kind in ("timm", "torchvision"):
        if (
            kind == model.source
            and build.get("id") == model.id
            and _canon(build.get("kwargs", {})) == _canon(model.kwargs)
        ):
            return None
        return f"its {kind} reference ({build.get('id')!r}) is not the recipe's model ({model.id!r})"
    if kind == "trusted-file":
        named = Path(model.path).expanduser().resolve() if model.path else None
        if not policy or not policy.trust:
            return f"it unpickles {build.get('path')!r}, which needs `trust: true` in the recipe being built"
        if named is None or str(named) != build.get("path"):
            return f"it unpickles {build.get('path')!r}, not the recipe's model.path ({model.path!r})"
        return None
    return f"its architecture reference has an unknown kind {kind!r}"


def edits_problem(ref: dict[str, Any]) -> str | None:
    """Structural edits replayed on a rebuilt module set plain values on public attributes only."""
    for edit in ref.get("edits") or []:
        if not isinstance(edit, dict):
            return "an edit in its reference is not a mapping"
        for name, changed in (edit.get("attrs") or {}).items():
            if not isinstance(changed, dict) or any(
                not isinstance(k, str) or k.startswith("_") or not _plain(v) for k, v in changed.items()
            ):
                return f"an edit of '{name}' sets a private attribute or a value that is not plain data"
    return None


def _plain(value: Any) -> bool:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return True
    return isinstance(value, list) and all(isinstance(v, (bool, int, float, str)) for v in value)


def untrusted_reason(artifact: Any, file_sha256: Any = None) -> str | None:
    """Why a cached artifact (or one of its components) would run code the recipe being built does not name,
    or None. Checked on every cache hit, so a damaged or edited entry is rebuilt instead of used:
    - a torch module's architecture reference must be one the recipe names (`reference_problem`);
    - a fixed graph (TorchScript, .pt2) must be byte for byte the file the recipe's `model.path` names.
    `file_sha256(path)` hashes the recipe's file (by default through vopt.core.filehash, which reads a file
    once and remembers its hash while it is unchanged)."""
    from vopt.core.filehash import content_sha256

    hasher = file_sha256 or content_sha256
    for part in [artifact, *artifact.components.values()]:
        meta = part.meta or {}
        ref = meta.get("module_ref")
        if ref is not None:
            build = ref.get("build") if isinstance(ref, dict) else None
            why = reference_problem(build) or (edits_problem(ref) if isinstance(ref, dict) else None)
            if why:
                return why
        if meta.get("module_format") in ("torchscript", "exported"):
            policy = current_policy()
            model = policy.model if policy else None
            named = Path(model.path).expanduser() if model is not None and model.path else None
            if named is None or not named.is_file():
                return "it holds a fixed graph (TorchScript, .pt2) that the recipe being built does not name"
            if hasher(named) != part.sha256:
                return f"its fixed graph is not the file the recipe names ({named})"
    return None


def arch_fingerprint(spec: str | None) -> dict[str, Any]:
    """Cache-key material for the factory's source file, so editing the model code rebuilds it."""
    import importlib.util

    if not spec or ":" not in spec:
        return {}
    _search_path()
    try:
        found = importlib.util.find_spec(spec.partition(":")[0])
    except (ImportError, ValueError):
        return {}
    if found is None or not found.origin or not Path(found.origin).is_file():
        return {}
    st = Path(found.origin).stat()
    return {"arch_file": f"{found.origin}|{st.st_size}|{st.st_mtime_ns}"}
