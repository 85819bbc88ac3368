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


# -- artifact formats ---------------------------------------------------------------------------------------
# Format plugins (vopt/formats), and the plugins that make or take a format (targets, schemes, sources,
# families, and the runtime adapters each format names) may name formats. Nothing else may: the rest of vopt
# asks the format plugin (vopt.registry.get_format(artifact.format).torch_module, .io(), ...).
FORMAT_PLUGINS = (
    "vopt/formats/",
    "vopt/targets/",
    "vopt/web/",
    "vopt/quant/schemes/",
    "vopt/models/sources/",
    "vopt/models/families/",
    "vopt/runtimes/",
    "vopt/registry.py",
)
# (file, name): why this use of a string that is also a format's name is not dispatch on a format.
FORMAT_ALLOWED: dict[tuple[str, str], str] = {}


def _format_names() -> set[str]:
    """Format names; `components` is also the Artifact field that holds an artifact's components, so its uses
    as a key are the field, and dispatch on it is caught by the `.format` comparison below."""
    from vopt.registry import FORMATS

    return set(FORMATS) - {"components"}


def _is_format_value(node: ast.AST) -> bool:
    """`x.format` or `x["format"]`: an artifact's format."""
    if isinstance(node, ast.Attribute):
        return node.attr == "format"
    return isinstance(node, ast.Subscript) and _strings(node.slice) == ["format"]


def _is_declared_formats(node: ast.AST) -> bool:
    """A plugin's own list of formats (`target.input_formats`): asking the plugin, not naming a format."""
    return isinstance(node, ast.Attribute) and node.attr.endswith("formats")


def format_dispatch(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, what) for every comparison of an artifact's format with anything but another artifact's format
    or a plugin's declared formats, and every use of a format's name as a compared value or a table key."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(map(_is_format_value, sides)) and not all(
                _is_format_value(s) or _is_declared_formats(s) for s in sides
            ):
                found.append((node.lineno, "compares an artifact's .format"))
    names = _format_names()
    found += [(line, f"'{s}' {how}") for line, s, how in name_uses(tree) if s in names]
    return found


def format_violations() -> list[str]:
    out = []
    for path in sorted((REPO / "vopt").rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(FORMAT_PLUGINS) or "node_modules" in rel:
            continue
        for line, what in format_dispatch(ast.parse(path.read_text(), rel)):
            name = what.split("'")[1] if "'" in what else ""
            if (rel, name) not in FORMAT_ALLOWED:
                out.append(f"{rel}:{line}: {what}")
    return out


def test_no_code_outside_the_plugins_dispatches_on_a_format():
    found = format_violations()
    assert not found, "ask the format plugin (vopt.registry.get_format) instead:\n" + "\n".join(found)


def test_the_scan_finds_format_dispatch():
    code = (
        'if artifact.format == fmt: pass\n'
        'TABLE = {"openvino-ir": 1}\n'
        'ok = kind in ("torch-module", "x")\n'
        'fine = get_format(artifact.format).torch_module\n'
        'same = a.format == b["format"] or a.format in target.input_formats\n'
    )
    assert [line for line, _ in format_dispatch(ast.parse(code))] == [1, 2, 3]
