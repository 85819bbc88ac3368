"""Outside a plugin's own module and vopt/registry.py, no code compares a target or scheme name or keys a
table by one: the engine asks the plugin (Target.emulated, .static_shapes, .browser, .runtime_name, ...).
Adding a target or a scheme is then one module plus one registry line."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO
from vopt.registry import TARGETS

SCANNED = ("stages", "quant", "validate", "bench", "cli", "report", "web", "pipeline")

# Precision names that are also scheme names ("fp16"): comparing a precision is not dispatch on a plugin.
PRECISIONS = {"fp32", "fp16", "bf16", "int8", "int16", "int4"}

# (file, name): why this use of a registered name is not a plugin's identity.
ALLOWED = {
    ("vopt/stages/benchmark.py", "cpu"): "the machine's CPU model in the fingerprint, not the cpu target",
}

# Files still dispatching on names while their rewrite is in flight. Empty this as each lands; the test fails
# on a listed file that has become clean, so the list cannot go stale.
NOT_YET_CLEAN: set[str] = set()  # files still to clean (empty: every module asks the plugin)


def _schemes() -> dict[str, str]:
    """Registered schemes: in the registry, or (until they move there) in vopt.quant.schemes."""
    try:
        from vopt.registry import SCHEMES  # type: ignore[attr-defined]
    except ImportError:
        from vopt.quant.schemes import SCHEMES
    return dict(SCHEMES)


def _own_names() -> dict[str, set[str]]:
    """A plugin's module may use its own name (it defines it)."""
    own: dict[str, set[str]] = {}
    for name, spec in {**TARGETS, **_schemes()}.items():
        path = "vopt/" + "/".join(spec.partition(":")[0].split(".")[1:]) + ".py"
        own.setdefault(path, set()).add(name)
    return own


def _strings(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def name_uses(tree: ast.AST) -> list[tuple[int, str, str]]:
    """(line, string, how) for every string compared (==, !=, in), used as a dict key, a subscript, a
    .get/.pop/.setdefault key, or a match-case value."""
    found = []
    for node in ast.walk(tree):
        strings: list[str] = []
        how = ""
        if isinstance(node, ast.Compare) and any(
            isinstance(o, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for o in node.ops
        ):
            strings = [s for side in (node.left, *node.comparators) for s in _strings(side)]
            how = "compared"
        elif isinstance(node, ast.Dict):
            strings = [s for k in node.keys if k is not None for s in _strings(k)]
            how = "dict key"
        elif isinstance(node, ast.Subscript):
            strings, how = _strings(node.slice), "subscript"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("get", "pop", "setdefault")
            and node.args
        ):
            strings, how = _strings(node.args[0]), f".{node.func.attr}() key"
        elif isinstance(node, ast.MatchValue):
            strings, how = _strings(node.value), "match case"
        found += [(getattr(node, "lineno", 0), s, how) for s in strings]
    return found


def violations() -> dict[str, list[str]]:
    names = (set(TARGETS) | set(_schemes())) - PRECISIONS
    own = _own_names()
    by_file: dict[str, list[str]] = {}
    for package in SCANNED:
        for path in sorted((REPO / "vopt" / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            mine = own.get(rel, set())
            for line, text, how in name_uses(ast.parse(path.read_text(), rel)):
                if text in names and text not in mine and (rel, text) not in ALLOWED:
                    by_file.setdefault(rel, []).append(f"{rel}:{line}: '{text}' {how}")
    return by_file


def test_no_code_outside_the_plugins_dispatches_on_a_target_or_scheme_name():
    found = violations()
    dirty = {f: lines for f, lines in found.items() if f not in NOT_YET_CLEAN}
    assert not dirty, "ask the plugin instead of comparing its name:\n" + "\n".join(
        line for lines in dirty.values() for line in lines
    )
    clean = sorted(f for f in NOT_YET_CLEAN if f not in found)
    assert not clean, f"no longer dispatching on names: remove from NOT_YET_CLEAN: {clean}"


def test_the_scan_finds_name_dispatch(tmp_path: Path):
    code = (
        'if target.name == "openvino": pass\n'
        'EMULATED = {"webgpu": "..."}\n'
        'x = cfg.get("qnn")\n'
        'ok = name in ("webnn", "other")\n'
        'fine = precision == "fp16" or find_spec("openvino")\n'
    )
    names = (set(TARGETS) | set(_schemes())) - PRECISIONS
    hits = [(line, s) for line, s, _ in name_uses(ast.parse(code)) if s in names]
    assert hits == [(1, "openvino"), (2, "webgpu"), (3, "qnn"), (4, "webnn")]
