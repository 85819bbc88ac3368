"""Read recipe YAML with a file:line for every key path, resolve `extends:`, `--set` and `${env:VAR}`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vopt.errors import RecipeError

Path_ = tuple[Any, ...]
_ENV = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


@dataclass
class RawRecipe:
    """Merged recipe data plus where each key path was set."""

    data: dict[str, Any]
    locations: dict[Path_, str] = field(default_factory=dict)
    path: Path | None = None
    files: list[Path] = field(default_factory=list)

    def where(self, loc: Path_) -> str:
        """The file:line that set `loc`, or that of its nearest parent."""
        loc = tuple(loc)
        while loc:
            if loc in self.locations:
                return self.locations[loc]
            loc = loc[:-1]
        return self.locations.get((), f"{display_path(self.path)}:1" if self.path else "<recipe>")


def _locations(node: yaml.Node, file: str, prefix: Path_, out: dict[Path_, str]) -> None:
    out[prefix] = f"{file}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            key = (
                yaml.safe_load(yaml.serialize(key_node))
                if not isinstance(key_node, yaml.ScalarNode)
                else key_node.value
            )
            path = (*prefix, key)
            if key in seen:  # YAML would silently keep the last one
                dotted = ".".join(str(p) for p in path)
                raise RecipeError(f"{file}:{key_node.start_mark.line + 1}: {dotted}: duplicate key")
            seen.add(key)
            _locations(value_node, file, path, out)
            out[path] = f"{file}:{key_node.start_mark.line + 1}"
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _locations(item, file, (*prefix, i), out)


def display_path(path: Path | str) -> str:
    """Paths in messages are relative to the working directory where that is shorter."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


# Python refuses to convert longer integer strings (sys.get_int_max_str_digits); the recipe says so first.
MAX_INT_DIGITS = 4300
# Aliases make a small file expand into a huge tree ("billion laughs"); no real recipe has this many nodes.
MAX_NODES = 100_000
_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


class _Loader(yaml.SafeLoader):  # the pure-Python loader: libyaml parses some flow syntax differently
    """safe_load, except that an over-long integer is a marked YAML error instead of a bare ValueError."""

    def construct_yaml_int(self, node: yaml.Node) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:
            digits = sum(c.isdigit() for c in str(node.value))
            raise yaml.constructor.ConstructorError(
                None, None, f"integer with {digits} digits (at most {MAX_INT_DIGITS})", node.start_mark
            ) from None

    def construct_plain_string(self, node: yaml.Node) -> str:
        return str(self.construct_scalar(node))

    def refuse(self, node: yaml.Node) -> Any:
        raise yaml.constructor.ConstructorError(
            None, None, f"YAML type {node.tag.rsplit(':', 1)[-1]} is not allowed in a recipe", node.start_mark
        )


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
# A recipe holds JSON-like values: a date stays the text it was written as; sets and binary are errors.
_Loader.add_constructor("tag:yaml.org,2002:timestamp", _Loader.construct_plain_string)
for _tag in ("set", "binary", "omap", "pairs"):
    _Loader.add_constructor(f"tag:yaml.org,2002:{_tag}", _Loader.refuse)


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def decode_recipe(data: bytes, where: str) -> str:
    """Recipe bytes as text: UTF-8 only, no NUL bytes; the error names the line."""
    for bom, name in _BOMS.items():
        if data.startswith(bom):
            raise RecipeError(f"{where}:1: the file is {name} (byte-order mark); save the recipe as UTF-8")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise RecipeError(f"{where}:{_line_of(data, nul)}: NUL byte in the file: a recipe is UTF-8 text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        bad = data[exc.start : exc.start + 1].hex()
        raise RecipeError(
            f"{where}:{_line_of(data, exc.start)}: not UTF-8 (byte 0x{bad}); save the recipe as UTF-8"
        ) from None


def yaml_value(text: str, where: str = "value") -> Any:
    """One YAML document with the recipe loader (for `--set` values and `${env:...}`), its size bounded."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _count_nodes(node, where)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, where: str, text: str) -> RecipeError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        return RecipeError(f"{where}{line}: invalid YAML: {exc.problem or exc.context}")
    if isinstance(exc, yaml.reader.ReaderError):  # a control character: position is a character offset
        line = text.count("\n", 0, exc.position) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        return RecipeError(f"{where}:{line}: control character #x{code:04x} is not allowed in YAML")
    return RecipeError(f"{where}: invalid YAML: {exc}")


def _count_nodes(node: yaml.Node, where: str) -> None:
    seen = 0
    stack = [node]
    while stack:
        n = stack.pop()
        seen += 1
        if seen > MAX_NODES:
            raise RecipeError(f"{where}: expands to more than {MAX_NODES:,} YAML nodes (aliases of aliases?)")
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                stack.extend((k, v))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[Path_, str]]:
    shown = display_path(path)
    try:
        raw_bytes = path.read_bytes()
    except FileNotFoundError:
        raise RecipeError(f"{shown}: recipe file not found") from None
    except OSError as exc:
        raise RecipeError(f"{shown}: cannot read recipe: {exc.strerror}") from None
    text = decode_recipe(raw_bytes, shown)
    try:
        node = yaml.compose(text, Loader=_Loader)  # noqa: S506 - _Loader is a safe loader
        if node is not None:
            _count_nodes(node, f"{shown}:{node.start_mark.line + 1}: recipe")
        data = yaml_value(text, f"{shown}:1: recipe")
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, shown, text) from None
    except RecursionError:
        raise RecipeError(f"{shown}: invalid YAML: nested too deeply") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise RecipeError(f"{shown}:1: a recipe must be a mapping of sections, got {type(data).__name__}")
    locs: dict[Path_, str] = {(): f"{shown}:1"}  # an empty file still has a line to point at
    if node is not None:
        try:
            _locations(node, shown, (), locs)
        except RecursionError:
            raise RecipeError(f"{shown}: invalid YAML: nested too deeply") from None
    return data, locs


def deep_merge(base: Any, over: Any) -> Any:
    """Mappings merge key by key; anything else (lists included) is replaced by the later value."""
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base[key], value) if key in base else value
        return merged
    return over


def _merge_locations(base: dict[Path_, str], over: dict[Path_, str], over_data: Any) -> dict[Path_, str]:
    merged = dict(base)
    # A later scalar or list replaces the whole subtree, so drop the older sub-paths first.
    for path, _ in over.items():
        value = _get(over_data, path)
        if not isinstance(value, dict):
            for old in [p for p in merged if len(p) > len(path) and p[: len(path)] == path]:
                del merged[old]
    merged.update({p: loc for p, loc in over.items() if p})
    return merged


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        data = data[key]
    return data


def _load_with_extends(path: Path, stack: tuple[Path, ...]) -> RawRecipe:
    path = path.resolve()
    data, locs = _read_yaml(path)
    extends = data.pop("extends", None) or []
    if isinstance(extends, str):
        extends = [extends]
    if not isinstance(extends, list) or not all(isinstance(e, str) for e in extends):
        raise RecipeError(
            f"{locs.get(('extends',), display_path(path))}: extends: must be a list of recipe file paths"
        )
    merged_data: dict[str, Any] = {}
    merged_locs: dict[Path_, str] = {}
    files: list[Path] = []
    for i, rel in enumerate(extends):
        parent_path = (path.parent / rel).resolve()
        if not parent_path.exists():
            where = locs.get(("extends", i)) or locs.get(("extends",), display_path(path))
            raise RecipeError(f"{where}: extends: file not found: {rel} (looked in {path.parent})")
        if parent_path in (*stack, path):
            where = locs.get(("extends", i)) or locs.get(("extends",), display_path(path))
            chain = " -> ".join(display_path(p) for p in (*stack, path, parent_path))
            raise RecipeError(f"{where}: extends: cycle: {chain}")
        parent = _load_with_extends(parent_path, (*stack, path))
        merged_locs = _merge_locations(merged_locs, parent.locations, parent.data)
        merged_data = deep_merge(merged_data, parent.data)
        files.extend(parent.files)
    locs = {p: loc for p, loc in locs.items() if not (p and p[0] == "extends")}
    merged_locs = _merge_locations(merged_locs, locs, data)
    merged_data = deep_merge(merged_data, data)
    files.append(path)
    return RawRecipe(merged_data, merged_locs, path, files)


def parse_set(expr: str) -> tuple[list[str], Any]:
    if "=" not in expr:
        raise RecipeError(f"--set {expr}: expected key.path=value")
    key, _, raw = expr.partition("=")
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise RecipeError(f"--set {expr}: bad key path '{key}'")
    if "\x00" in raw:
        raise RecipeError(f"--set {key}=...: NUL character in the value")
    try:
        value = yaml_value(raw, f"--set {key}=...") if raw.strip() else ""
    except yaml.constructor.ConstructorError as exc:  # e.g. an integer too long to convert
        raise RecipeError(f"--set {key}=...: {exc.problem}") from None

    except yaml.YAMLError:
        value = raw  # not YAML: the plain string
    except RecursionError:
        raise RecipeError(f"--set {key}=...: value nested too deeply") from None
    return parts, value


def apply_sets(raw: RawRecipe, sets: list[str]) -> None:
    for expr in sets:
        parts, value = parse_set(expr)
        node: Any = raw.data
        for depth, part in enumerate(parts[:-1]):
            child = node.get(part) if isinstance(node, dict) else None
            if child is None:
                child = {}
                node[part] = child
                raw.locations[tuple(parts[: depth + 1])] = f"--set {expr}"
            if not isinstance(child, dict):
                prefix = ".".join(parts[: depth + 1])
                raise RecipeError(f"--set {expr}: `{prefix}` is a {type(child).__name__}, not a section")
            node = child
        node[parts[-1]] = value
        path = tuple(parts)
        for old in [p for p in raw.locations if len(p) >= len(path) and p[: len(path)] == path]:
            del raw.locations[old]
        raw.locations[path] = f"--set {expr}"


def _interpolate(value: Any, path: Path_, raw: RawRecipe) -> Any:
    if isinstance(value, dict):
        return {k: _interpolate(v, (*path, k), raw) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, (*path, i), raw) for i, v in enumerate(value)]
    if isinstance(value, str) and "${env:" in value:

        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            key = ".".join(str(p) for p in path)
            raise RecipeError(f"{raw.where(path)}: {key}: environment variable {name} is not set")

        out = _ENV.sub(repl, value)
        # A whole-value substitution keeps YAML typing, so `${env:N}` can fill an int.
        if _ENV.fullmatch(value):
            try:
                return yaml_value(out, f"{raw.where(path)}: {'.'.join(str(p) for p in path)}")
            except yaml.constructor.ConstructorError as exc:
                key = ".".join(str(p) for p in path)
                raise RecipeError(f"{raw.where(path)}: {key}: {exc.problem}") from None
            except (yaml.YAMLError, RecursionError):
                return out
        return out
    return value


def load_raw(path: str | Path, sets: list[str] | None = None) -> RawRecipe:
    raw = _load_with_extends(Path(path), ())
    apply_sets(raw, sets or [])
    raw.data = _interpolate(raw.data, (), raw)
    return raw
