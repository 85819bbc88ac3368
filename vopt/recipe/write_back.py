"""`vopt build --write-back`: put the quantization fallback's float layers into the recipe's
`quantize.exclude.nodes` (and what quantize.search chose: int16 layers, calibration method, scheme options),
editing only those spots of the file (comments and layout elsewhere stay)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

KEYS = ("quantize", "exclude", "nodes")


INT16_KEYS = ("quantize", "options", "int16_nodes")


def kept_float(manifest: dict[str, Any], to: str = "float") -> list[str]:
    for step in manifest.get("steps", []):
        if step.get("stage") == "quantize":
            return list((step.get("report") or {}).get("fallback", {}).get(f"kept_{to}") or [])
    return []


def search_settings(manifest: dict[str, Any]) -> dict[tuple[str, ...], Any]:
    """The settings quantize.search changed, by recipe key path: the calibration method, and the scheme's own
    options (e.g. nncf's bias_correction) under quantize.options."""
    for step in manifest.get("steps", []):
        if step.get("stage") == "quantize":
            changed = (step.get("report") or {}).get("search", {}).get("changed_settings") or {}
            return {
                (("quantize", "calibration", "method") if k == "method" else ("quantize", "options", k)): v
                for k, v in changed.items()
            }
    return {}


def write_back(loaded: Any, manifest: dict[str, Any]) -> str | None:
    """Returns what was written (for the CLI), or None when there is nothing to write."""
    settings = search_settings(manifest)
    said = [_write_layers(loaded, manifest, kind) for kind in ("float", "int16")]
    path: Path | None = loaded.path
    for keys, value in settings.items() if path is not None else ():
        text = Path(path).read_text()
        updated = set_nodes(text, value, keys, "quantize.search")
        got: Any = yaml.safe_load(updated) or {}
        for key in keys:
            got = (got or {}).get(key) if isinstance(got, dict) else None
        if got != value:
            raise RuntimeError(f"write-back produced an unexpected recipe ({'.'.join(keys)} = {got!r})")
        tmp = Path(path).with_name(f".{Path(path).name}.write-back")
        tmp.write_text(updated)
        tmp.replace(path)
        said.append(f"{'.'.join(keys)} = {value}")
    said = [s for s in said if s]
    return "; ".join(said) if said else None


def _write_layers(loaded: Any, manifest: dict[str, Any], to: str) -> str | None:
    # float layers -> quantize.exclude.nodes; int16 layers (options.fallback_to: int16, or the search's)
    # -> quantize.options.int16_nodes
    kept, keys = kept_float(manifest, to), (KEYS if to == "float" else INT16_KEYS)
    path: Path | None = loaded.path
    if not kept or path is None:
        return None
    q = loaded.recipe.quantize
    if keys == KEYS:
        existing = list(q.exclude.nodes) if q is not None else []
    else:
        existing = list((q.options if q is not None else {}).get("int16_nodes", []))
    new = [n for n in kept if n not in existing]
    if not new:
        return None
    nodes = existing + new  # the full list: a list set in this file replaces an inherited one
    text = Path(path).read_text()
    updated = set_nodes(text, nodes, keys, _source(manifest))
    got: Any = yaml.safe_load(updated) or {}
    for key in keys:
        got = (got or {}).get(key) if isinstance(got, dict) else None
    if got != nodes:  # never leave a recipe that does not say what we meant
        raise RuntimeError(f"write-back produced an unexpected recipe ({'.'.join(keys)} = {got!r})")
    tmp = Path(path).with_name(f".{Path(path).name}.write-back")
    tmp.write_text(updated)
    tmp.replace(path)
    where = "kept in float" if keys == KEYS else "with 16-bit activations"
    return f"{'.'.join(keys)} (+{len(new)} layer{'s' if len(new) != 1 else ''} {where})"


def _source(manifest: dict[str, Any]) -> str:
    """What chose the layers: quantize.search or auto_fallback (for the comment written beside them)."""
    for step in manifest.get("steps", []):
        if step.get("stage") == "quantize" and (step.get("report") or {}).get("search"):
            return "quantize.search"
    return "quantize auto_fallback"


def set_nodes(
    text: str, nodes: Any, keys: tuple[str, ...] = KEYS, source: str = "quantize auto_fallback"
) -> str:
    """Set quantize.exclude.nodes (or another key path) in YAML text, touching as little of it as possible."""
    root = yaml.compose(text)
    if root is None or not isinstance(root, yaml.MappingNode):
        return text.rstrip("\n") + "\n" + _block(keys, nodes, 0, source)
    node: yaml.Node = root
    depth = 0
    for key in keys:
        child = _child(node, key)
        if child is None:
            break
        node, depth = child, depth + 1
    if depth == len(keys):  # the list exists: replace its value, in the style it was written in
        if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
            pad = "\n" + " " * node.start_mark.column
            return _replace(text, node, pad.join(f"- {json.dumps(n)}" for n in nodes))
        return _replace(text, node, json.dumps(nodes))
    if not isinstance(node, yaml.MappingNode):  # e.g. `quantize:` with no value
        return _replace(text, node, json.dumps(_nest(keys[depth:], nodes)))
    if node.flow_style:
        data = yaml.safe_load(text[node.start_mark.index : node.end_mark.index]) or {}
        cur = data
        for key in keys[depth:-1]:
            cur = cur.setdefault(key, {})
        cur[keys[-1]] = nodes
        return _replace(text, node, json.dumps(data))
    if node is root:
        return text.rstrip("\n") + "\n" + _block(keys[depth:], nodes, 0, source)
    indent = node.value[0][0].start_mark.column if node.value else 2
    # Insert after the line where the mapping's last value ends (a block node's own end mark is at the
    # next token, past any comments in between).
    last: yaml.Node = node
    while isinstance(last, yaml.MappingNode) and not last.flow_style and last.value:
        last = last.value[-1][1]
    while isinstance(last, yaml.SequenceNode) and not last.flow_style and last.value:
        last = last.value[-1]
    newline = text.find("\n", last.end_mark.index - 1 if last.end_mark.index else 0)
    insert_at = len(text) if newline < 0 else newline + 1
    prefix = "" if insert_at == 0 or text[insert_at - 1] == "\n" else "\n"
    return text[:insert_at] + prefix + _block(keys[depth:], nodes, indent, source) + text[insert_at:]


def _child(node: yaml.Node, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _nest(keys: tuple[str, ...], nodes: list[str]) -> Any:
    out: Any = nodes
    for key in reversed(keys):
        out = {key: out}
    return out


def _block(keys: tuple[str, ...], nodes: Any, indent: int, source: str) -> str:
    lines = []
    for i, key in enumerate(keys):
        pad = " " * (indent + 2 * i)
        last = i == len(keys) - 1
        note = f"  # written by vopt build --write-back ({source})" if last else ""
        if last and not isinstance(nodes, list):  # a scalar setting (the search's calibration method)
            lines.append(f"{pad}{key}: {json.dumps(nodes)}{note}")
            return "\n".join(lines) + "\n"
        lines.append(f"{pad}{key}:{note}")
    pad = " " * (indent + 2 * len(keys))
    lines += [f"{pad}- {json.dumps(n)}" for n in nodes]
    return "\n".join(lines) + "\n"


def _replace(text: str, node: yaml.Node, value: str) -> str:
    start, end = node.start_mark.index, node.end_mark.index
    span = text[start:end]
    trailing = span[len(span.rstrip()) :]
    return text[:start] + value + trailing + text[end:]
