"""The model types the installed transformers knows, read from its source instead of importing it, so that
`vopt check` stays fast and never imports torch (transformers' auto-config module imports torch: seconds)."""

from __future__ import annotations

import ast
import functools
import importlib.util
from pathlib import Path

# Where transformers lists its model types: auto_mappings.py (5.x), configuration_auto.py (4.x, and the few
# that 5.x adds there).
_SOURCES = ("models/auto/auto_mappings.py", "models/auto/configuration_auto.py")
_NAME = "CONFIG_MAPPING_NAMES"


@functools.lru_cache(maxsize=1)
def installed_model_types() -> frozenset[str] | None:
    """The keys of transformers' CONFIG_MAPPING (what `vopt.models.sources.hf.build_config` accepts), or None
    when transformers is not installed or its source no longer spells them out (the build then says)."""
    spec = importlib.util.find_spec("transformers")  # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(next(iter(spec.submodule_search_locations)))
    names: set[str] = set()
    for rel in _SOURCES:
        try:
            tree = ast.parse((root / rel).read_text(encoding="utf-8"))
        except (OSError, SyntaxError, ValueError):
            continue
        for stmt in tree.body:
            if _sets_mapping(stmt):
                names |= _literal_keys(stmt)
    return frozenset(names) or None


def _sets_mapping(stmt: ast.stmt) -> bool:
    """`CONFIG_MAPPING_NAMES = ...` or `CONFIG_MAPPING_NAMES.update(...)`."""
    if isinstance(stmt, ast.Assign):
        return any(isinstance(t, ast.Name) and t.id == _NAME for t in stmt.targets)
    if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Call):
        func = stmt.value.func
        return isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == _NAME
    return False


def _literal_keys(stmt: ast.stmt) -> set[str]:
    """The string keys written in the statement: ("type", "Config") pairs and {"type": "Config"} dicts."""
    keys: set[str] = set()
    for node in ast.walk(stmt):
        if isinstance(node, ast.Tuple) and len(node.elts) == 2:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                keys.add(first.value)
        elif isinstance(node, ast.Dict):
            keys |= {k.value for k in node.keys if isinstance(k, ast.Constant) and isinstance(k.value, str)}
    return keys
