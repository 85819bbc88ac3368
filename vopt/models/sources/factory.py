"""`module:factory` strings from recipes, resolved with errors that say what is wrong.

A factory runs code, so only two kinds of module may provide one: the recipe's own (a file in the recipe's
directory or the working directory) and an installed third-party package. The standard library and
shell-like packages (subprocess, os, ...: `arch: subprocess:getoutput` runs a shell command) are refused
unless the recipe says `trust: true`, which the load step records in the manifest."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, RecipeError

# Third-party modules whose callables run commands or code; refused like the standard library.
SHELL_LIKE = frozenset(
    {
        "sh",
        "plumbum",
        "invoke",
        "fabric",
        "pexpect",
        "ptyprocess",
        "sarge",
        "envoy",
        "delegator",
        "executor",
        "shellingham",
        "psutil",
        "cffi",
        "dill",
        "cloudpickle",
        "joblib",
        "IPython",
        "pip",
        "setuptools",
        "pkg_resources",
        "_pytest",
        "pytest",
        "torch.utils.cpp_extension",
        "torch.hub",
        "torch.package",
    }
)

_recipe_dirs: list[Path] = []  # set by the engine for the build in progress
_trusted: list[bool] = []


@contextlib.contextmanager
def build_policy(recipe_dir: Path | None, trust: bool) -> Iterator[None]:
    """During a build, the recipe's directory provides user modules (and is on sys.path for them), and the
    recipe's `model.trust` is the only thing that grants trust (a cached reference cannot)."""
    path = Path(recipe_dir).resolve() if recipe_dir is not None else None
    if path is not None:
        _recipe_dirs.append(path)
    _trusted.append(bool(trust))
    try:
        yield
    finally:
        _trusted.pop()
        if path is not None:
            _recipe_dirs.remove(path)


def granted_trust() -> bool:
    return bool(_trusted and _trusted[-1])


def _search_path() -> None:
    for where in [os.getcwd(), *map(str, _recipe_dirs)]:
        if where not in sys.path:
            sys.path.insert(0, where)  # a recipe's own module next to it, as `python -m` would find it


def trust_needed(module_name: str) -> str | None:
    """Why importing a factory from `module_name` needs `trust: true`, or None when it does not."""
    import importlib.util

    top = module_name.split(".")[0]
    if module_name in SHELL_LIKE or top in SHELL_LIKE:
        return f"'{module_name}' is a shell-like module (it runs commands or arbitrary code)"
    if top in sys.stdlib_module_names or top in sys.builtin_module_names:
        return f"'{module_name}' is part of the Python standard library, not a model package"
    _search_path()
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None  # the import below says what is wrong
    if found is None:
        return None
    origin = found.origin or next(iter(found.submodule_search_locations or []), None)
    if origin is None or origin in ("built-in", "frozen"):
        return f"'{module_name}' is a built-in module"
    where = Path(origin).resolve()
    roots = [Path(os.getcwd()).resolve(), *_recipe_dirs]
    if any(where.is_relative_to(r) for r in roots) or _installed(top, where):
        return None
    return (
        f"'{module_name}' comes from {where.parent}, which is neither the recipe's directory nor an "
        "installed package"
    )


def _installed(top: str, where: Path) -> bool:
    import importlib.metadata
    import site

    sites = [*site.getsitepackages(), site.getusersitepackages()]
    if any(where.is_relative_to(Path(s).resolve()) for s in sites if s):
        return True
    return top in importlib.metadata.packages_distributions()  # editable installs


def import_factory(spec: str | None, key: str = "model.arch", *, trust: bool = False) -> Any:
    if not spec:
        raise RecipeError(
            f"{key}: required: a `module:factory` that builds the model, e.g. mypkg.nets:build_net"
        )
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise RecipeError(f"{key}: expected `module:factory`, got '{spec}'")
    why = trust_needed(module_name)
    if why and not trust:
        raise RecipeError(
            f"{key}: refused '{spec}': {why}; a factory must come from the recipe's directory or "
            "an installed model package (set `model.trust: true` to allow it anyway)"
        )
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
    path = getattr(module, "__file__", None)
    return bool(path) and not str(path).startswith((sys.prefix, sys.base_prefix))


def build_module(
    spec: str | None, kwargs: dict[str, Any], key: str = "model.arch", *, trust: bool = False
) -> Any:
    import torch

    factory = import_factory(spec, key, trust=trust)
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
    _search_path()
    try:
        found = importlib.util.find_spec(spec.partition(":")[0])
    except (ImportError, ValueError):
        return {}
    if found is None or not found.origin or not Path(found.origin).is_file():
        return {}
    st = Path(found.origin).stat()
    return {"arch_file": f"{found.origin}|{st.st_size}|{st.st_mtime_ns}"}
