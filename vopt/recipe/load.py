"""Read recipe YAML with a file:line for every key path, resolve `extends:`, `--set` and `${env:VAR}`."""

from __future__ import annotations

import os
import re
import stat
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


_KEY_TYPES = {bool: "a boolean", int: "a number", float: "a number", type(None): "null"}


def _locations(
    node: yaml.Node, file: str, prefix: Path_, out: dict[Path_, str], loader: yaml.BaseLoader
) -> None:
    """file:line of every key path, keyed as the constructed data is (`loader` built it from `node`)."""
    out[prefix] = f"{file}:{node.start_mark.line + 1}"
    if isinstance(node, yaml.MappingNode):
        seen: set[Any] = set()
        for key_node, value_node in node.value:
            line = f"{file}:{key_node.start_mark.line + 1}"
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                # YAML reads `true:`, `null:`, `1:` as a boolean, null or number; every recipe key is text
                dotted = ".".join(str(p) for p in prefix)
                what = _KEY_TYPES.get(type(key), type(key).__name__)
                raise RecipeError(
                    f"{line}: {dotted + '.' if dotted else ''}{key_node.value}: a key must be text, and YAML "
                    f"reads this one as {what}; quote it ('{key_node.value}') if it is a name"
                )
            path = (*prefix, key)
            if key in seen:  # YAML would silently keep the last one
                dotted = ".".join(str(p) for p in path)
                raise RecipeError(f"{line}: {dotted}: duplicate key")
            seen.add(key)
            _locations(value_node, file, path, out, loader)
            out[path] = line
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _locations(item, file, (*prefix, i), out, loader)


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
# The YAML reader is pure Python (about 2 s per MB, 0.1 ms per node on this project's 2-core machine), so the
# text it is given is bounded before it is parsed: a shipped recipe is under 2 KB and a few hundred nodes
# (1,000 class names in `model.labels` are 1,000 nodes). These bounds keep `vopt check` of any file under a
# second or two, where a 30 MB string or a list of a million items took minutes.
MAX_RECIPE_BYTES = 256 * 1024
MAX_PARSED_NODES = 10_000
# Sections nest 3 or 4 levels, a transformers config a few more. 64 stays far below Python's recursion
# limit in the YAML composer and constructor (2 to 3 frames per level), so too deep is a located error.
MAX_DEPTH = 64
# `extends:` chains and fan-outs: fragments compose 2 or 3 files; a diamond of fragments that extend each
# other many times over would otherwise read the same files exponentially often.
MAX_EXTENDS_DEPTH = 16
MAX_EXTENDS_FILES = 64
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

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        """Compose, bounded: at most MAX_PARSED_NODES nodes and MAX_DEPTH levels, each refused at the line
        where the limit is crossed (the recursive composer would raise an unlocated RecursionError)."""
        self._vopt_nodes = getattr(self, "_vopt_nodes", 0) + 1
        self._vopt_depth = getattr(self, "_vopt_depth", 0) + 1
        try:
            if self._vopt_depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"nested too deeply (more than {MAX_DEPTH} levels)",
                    self.peek_event().start_mark,
                )
            if self._vopt_nodes > MAX_PARSED_NODES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"more than {MAX_PARSED_NODES:,} YAML values (a recipe has a few hundred)",
                    self.peek_event().start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self._vopt_depth -= 1

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
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"{where}: {len(text):,} characters; at most {MAX_RECIPE_BYTES:,}")
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


_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def special_file_kind(mode: int) -> str | None:
    """What a path is when it is not a regular file ("a named pipe (FIFO)"); None for a regular file. Reading
    a FIFO blocks until a writer comes, and /dev/zero or /dev/urandom never end."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _recipe_file_problem(path: Path) -> str | None:
    """Why `path` cannot be a recipe file, without opening it (opening a FIFO blocks); None when it can."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "not found"
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long, a loop of symlinks
        return f"not a usable path ({getattr(exc, 'strerror', None) or exc})"
    kind = special_file_kind(st.st_mode)
    if kind:
        return f"{kind}, not a recipe file"
    return None


def _read_bytes(path: Path, shown: str, blame: str) -> bytes:
    """The file's bytes, at most MAX_RECIPE_BYTES; the error names the line where the limit falls. Problems
    with the file itself are said after `blame` (the `extends:` line that named it, for a fragment)."""
    problem = _recipe_file_problem(path)
    if problem == "not found":
        raise RecipeError(f"{blame}: recipe file not found")
    if problem:
        raise RecipeError(f"{blame}: {problem}")
    try:
        with path.open("rb") as f:
            data = f.read(MAX_RECIPE_BYTES + 1)  # a /proc file says size 0: read, bounded, not stat'ed
    except OSError as exc:
        raise RecipeError(f"{blame}: cannot read recipe: {exc.strerror or exc}") from None
    if len(data) > MAX_RECIPE_BYTES:
        line = _line_of(data, MAX_RECIPE_BYTES)
        raise RecipeError(
            f"{shown}:{line}: the recipe is longer than {MAX_RECIPE_BYTES // 1024} KiB (it passes that size "
            "at this line); a recipe is a few KB of settings: put long lists in files (labels, data folders)"
        )
    return data


def _read_yaml(path: Path, blame: str | None = None) -> tuple[dict[str, Any], dict[Path_, str]]:
    shown = display_path(path)
    text = decode_recipe(_read_bytes(path, shown, blame or shown), shown)
    loader = None
    try:
        loader = _Loader(text)  # parsed once: the nodes give the lines, the same loader the values
        node = loader.get_single_node()
        if node is not None:
            _count_nodes(node, f"{shown}:{node.start_mark.line + 1}: recipe")
        data = loader.construct_document(node) if node is not None else None
        if isinstance(data, dict):
            locs: dict[Path_, str] = {(): f"{shown}:1"}  # an empty file still has a line to point at
            _locations(node, shown, (), locs, loader)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, shown, text) from None
    except RecursionError:  # MAX_DEPTH should make this unreachable; never an internal error
        raise RecipeError(f"{shown}:1: invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    if data is None:
        return {}, {(): f"{shown}:1"}
    if not isinstance(data, dict):
        raise RecipeError(f"{shown}:1: a recipe must be a mapping of sections, got {type(data).__name__}")
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
    # A later scalar or list replaces the whole subtree, so drop the older sub-paths first (by prefix
    # lookup: comparing every pair of paths was quadratic in the size of the recipes).
    replaced = {path for path in over if path and not isinstance(_get(over_data, path), dict)}
    merged = {p: loc for p, loc in base.items() if not any(p[:i] in replaced for i in range(1, len(p)))}
    merged.update({p: loc for p, loc in over.items() if p})
    return merged


def _get(data: Any, path: Path_) -> Any:
    for key in path:
        data = data[key]
    return data


def _load_with_extends(
    path: Path, stack: tuple[Path, ...], budget: list[int] | None = None, blame: str | None = None
) -> RawRecipe:
    budget = budget if budget is not None else [MAX_EXTENDS_FILES]
    try:
        path = path.resolve()
    except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, a loop of links
        raise RecipeError(f"{path}: not a usable path ({exc})") from None
    data, locs = _read_yaml(path, blame)
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
        where = locs.get(("extends", i)) or locs.get(("extends",)) or f"{display_path(path)}:1"
        try:
            parent_path = (path.parent / rel).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise RecipeError(f"{where}: extends: not a usable path: {rel!r} ({exc})") from None
        problem = _recipe_file_problem(parent_path)
        if problem == "not found":
            raise RecipeError(f"{where}: extends: file not found: {rel} (looked in {path.parent})")
        if problem:
            raise RecipeError(f"{where}: extends: {rel}: {problem}")
        if parent_path in (*stack, path):
            chain = " -> ".join(display_path(p) for p in (*stack, path, parent_path))
            raise RecipeError(f"{where}: extends: cycle: {chain}")
        if len(stack) + 1 >= MAX_EXTENDS_DEPTH:
            raise RecipeError(f"{where}: extends: chain of more than {MAX_EXTENDS_DEPTH} files")
        budget[0] -= 1
        if budget[0] < 0:
            raise RecipeError(f"{where}: extends: more than {MAX_EXTENDS_FILES} files read for one recipe")
        parent = _load_with_extends(parent_path, (*stack, path), budget, f"{where}: extends: {rel}")
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
    if len(parts) > MAX_DEPTH:
        raise RecipeError(f"--set {key[:80]}...: key path of {len(parts)} parts; at most {MAX_DEPTH}")
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
