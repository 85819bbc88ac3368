"""`module:factory` strings from recipes, resolved with errors that say what is wrong."""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from vopt.errors import BuildError, RecipeError


def import_factory(spec: str | None, key: str = "model.arch") -> Any:
    if not spec:
        raise RecipeError(f"{key}: required: a `module:factory` that builds the model, e.g. mypkg.nets:build_net")
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RecipeError(f"{key}: expected `module:factory`, got '{spec}'")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # a recipe's own module next to it, as `python -m` would find it
    try:
        module = importlib.import_module(module_name)
        if _is_user_code(module):
            module = importlib.reload(module)  # pick up edits made since an earlier build in this process
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise RecipeError(f"{key}: cannot import module '{module_name}' (no module named '{exc.name}'; "
                              "is it on PYTHONPATH or in the working directory?)") from None
        raise BuildError(f"{key}: importing '{module_name}' failed: {exc}", stage="load") from None
    except Exception as exc:
        raise BuildError(f"{key}: importing '{module_name}' failed: {type(exc).__name__}: {exc}", stage="load") from None
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            names = sorted(n for n in dir(module) if not n.startswith("_") and callable(getattr(module, n)))
            from vopt.recipe.suggest import did_you_mean

            raise RecipeError(f"{key}: module '{module_name}' has no '{attr}'{did_you_mean(part, names)}; "
                              f"callables there: {', '.join(names[:12]) or 'none'}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise RecipeError(f"{key}: '{spec}' is not callable")
    return obj


def _is_user_code(module: Any) -> bool:
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


def arch_fingerprint(spec: str | None) -> dict[str, Any]:
    """Cache-key material for the factory's source file, so editing the model code rebuilds it."""
    import importlib.util
    from pathlib import Path

    if not spec or ":" not in spec:
        return {}
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found = importlib.util.find_spec(spec.partition(":")[0])
    except (ImportError, ValueError):
        return {}
    if found is None or not found.origin or not Path(found.origin).is_file():
        return {}
    st = Path(found.origin).stat()
    return {"arch_file": f"{found.origin}|{st.st_size}|{st.st_mtime_ns}"}
