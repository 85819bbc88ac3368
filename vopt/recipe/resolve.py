"""Turn YAML into a validated Recipe, with one error line per problem."""

from __future__ import annotations

import contextlib
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from vopt.errors import RecipeError
from vopt.recipe.load import RawRecipe, load_raw
from vopt.suggest import did_you_mean


@dataclass
class LoadedRecipe:
    recipe: Any  # vopt.recipe.models.Recipe
    raw: RawRecipe

    @property
    def path(self) -> Path | None:
        return self.raw.path

    def resolved(self) -> dict[str, Any]:
        return self.recipe.model_dump(mode="json", by_alias=True, exclude_none=False)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg))
    if isinstance(annotation, types.UnionType):
        for arg in annotation.__args__:
            found.extend(_models_in(arg))
    return found


def _field_names(model: type[BaseModel], loc: tuple[Any, ...], data: Any) -> list[str]:
    """Valid keys of the section at `loc` (walking through unions by the `target` tag)."""
    models: list[type[BaseModel]] = [model]
    node = data
    for key in loc:
        nxt: list[type[BaseModel]] = []
        for m in models:
            fields = {f.alias or name: f for name, f in m.model_fields.items()}
            if key in fields:
                nxt.extend(_models_in(fields[key].annotation))
        if not nxt:  # a discriminator tag in the loc: stay on this level, pick by tag
            tagged = [m for m in models if "target" in m.model_fields and _tag(m) == key]
            nxt = tagged or models
        node = node.get(key) if isinstance(node, dict) else None
        models = nxt
    names: set[str] = set()
    for m in models:
        names.update(f.alias or n for n, f in m.model_fields.items())
    return sorted(names)


def _tag(model: type[BaseModel]) -> Any:
    args = typing.get_args(model.model_fields["target"].annotation)
    return args[0] if args else None


def _data_loc(loc: tuple[Any, ...], data: Any) -> tuple[Any, ...]:
    """Drop union tags that pydantic puts into error locations but that are not keys in the YAML."""
    out: list[Any] = []
    node = data
    for i, key in enumerate(loc):
        in_dict = isinstance(node, dict) and key in node
        in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
        if in_dict or in_list:
            node = node[key]
            out.append(key)
        elif isinstance(node, dict) and i + 1 < len(loc):
            continue  # a union tag such as the target name: not a key in the YAML
        else:
            out.append(key)
            node = None
    return tuple(out)


_UNION_LABEL = re.compile(r"^(int|float|str|bool|list|dict|constrained-\w+|function-\w+|literal)(\[.*\])?$")


def _without_union_labels(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], bool]:
    """Pydantic names the union member it tried (`list[constrained-int]`) in the location; the YAML has no
    such key."""
    out: list[Any] = []
    node = data
    labelled = False
    for key in loc:
        is_key = (isinstance(node, dict) and key in node) or (isinstance(node, list) and isinstance(key, int))
        if not is_key and isinstance(key, str) and _UNION_LABEL.match(key):
            labelled = True
            continue
        out.append(key)
        node = node[key] if is_key and (isinstance(node, dict) or key < len(node)) else None
    return tuple(out), labelled


def _errors(exc: ValidationError, data: Any) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Each error with a YAML location; of the attempts at one union, only those that got deepest into the
    value."""
    found = []
    for err in exc.errors():
        loc, labelled = _without_union_labels(tuple(err["loc"]), data)
        found.append((loc, labelled, err))
    # the proper prefixes of every labelled location: one set lookup per error, not a scan of all the others
    # (a list of thousands of bad items made that quadratic)
    under = {loc[:i] for loc, labelled, _ in found if labelled for i in range(len(loc))}
    return [(loc, err) for loc, labelled, err in found if not (labelled and loc in under)]


MAX_PROBLEM_LINES = 50


def format_validation_error(exc: ValidationError, raw: RawRecipe, model: type[BaseModel]) -> list[str]:
    lines: dict[str, str] = {}
    for pyd_loc, err in _errors(exc, raw.data):
        loc = _data_loc(pyd_loc, raw.data)
        key = ".".join(str(p) for p in loc) or "<recipe>"
        where = raw.where(loc)
        if err["type"] == "extra_forbidden":
            valid = _field_names(model, loc[:-1], raw.data)
            msg = f"unknown key{did_you_mean(str(loc[-1]), valid)}"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif err["type"] == "union_tag_invalid":
            ctx = err.get("ctx", {})
            tag = ctx.get("tag", "")
            expected = ctx.get("expected_tags", "")
            names = [t.strip(" '") for t in str(expected).split(",")]
            msg = f"unknown target '{tag}'{did_you_mean(str(tag), names)}; known: {', '.join(names)}"
            key = f"{key}.target" if not key.endswith("target") else key
            where = raw.where((*loc, "target")) if loc[-1:] != ("target",) else where  # e.g. blame `--set`
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
        head = f"{where}: {key}"
        if head not in lines:
            lines[head] = msg
        elif msg not in lines[head]:  # the members of a union, each rejected: one line
            lines[head] += f"; or {msg[0].lower()}{msg[1:]}"
    out = [f"{head}: {msg}" for head, msg in lines.items()]
    if len(out) > MAX_PROBLEM_LINES:  # a list of 10,000 bad items is one mistake, not 10,000 lines to read
        more = len(out) - MAX_PROBLEM_LINES
        out = [*out[:MAX_PROBLEM_LINES], f"{list(lines)[MAX_PROBLEM_LINES]}: ... and {more:,} more problems"]
    return out


_KEY_PATH = re.compile(r"^([A-Za-z_][\w-]*(?:\.[\w-]+)*): ")
_HAS_LINE = re.compile(r"(^|\s)\S+:\d+: |^--set ")


def _locate(text: str, raw: RawRecipe) -> str:
    if _HAS_LINE.search(text):
        return text
    match = _KEY_PATH.match(text)
    if not match:
        return text
    loc = tuple(int(p) if p.isdigit() else p for p in match.group(1).split("."))
    return f"{raw.where(loc)}: {text}"


@contextlib.contextmanager
def located(raw: RawRecipe) -> Iterator[None]:
    """A RecipeError raised after loading, by code that sees the typed recipe and not where its values came
    from (the plan's stage configs: "validate.data: 18 of 18 check images are in the calibration data"),
    gets the file:line of the key path each of its lines starts with."""
    try:
        yield
    except RecipeError as exc:
        message, lines = _locate(exc.message, raw), [_locate(line, raw) for line in exc.lines]
        if message == exc.message and lines == exc.lines:
            raise
        raise RecipeError(message, lines=lines, hint=exc.hint) from None


# Keys that were removed, and what to write instead: a recipe that still has one is told so at its line.
RETIRED: dict[tuple[str, ...], str] = {
    (
        "compile",
        "calibration_samples",
    ): "removed: web targets quantize in the quantize stage (its calibration, "
    "gates and fallback); write `quantize: {precision: int8, calibration: {samples: N}}` instead",
}


def _retired(raw: RawRecipe) -> list[str]:
    lines = []
    for loc, message in RETIRED.items():
        node: Any = raw.data
        for key in loc:
            node = node.get(key, _ABSENT) if isinstance(node, dict) else _ABSENT
        if node is not _ABSENT:
            lines.append(f"{raw.where(loc)}: {'.'.join(loc)}: {message}")
    return lines


_ABSENT = object()


def _plugin_problems(recipe: Any, raw: RawRecipe) -> list[str]:
    """Settings only a plugin can check, e.g. `quantize.options` against the chosen scheme's Options. The
    recipe layer reaches plugins only through the registry (as the compile union reaches target Configs)."""
    from vopt.registry import PLUGIN_CHECKS, load_object

    recipe_problems = load_object(PLUGIN_CHECKS["quantize"])

    return [
        f"{raw.where(loc)}: {'.'.join(str(p) for p in loc)}: {msg}" for loc, msg in recipe_problems(recipe)
    ]


def _fail(lines: list[str]) -> RecipeError:
    n = len(lines)
    return RecipeError(f"{n} problem{'s' if n != 1 else ''} in recipe", lines=lines)


def load_recipe(path: str | Path, sets: list[str] | None = None) -> LoadedRecipe:
    from vopt.recipe.models import Recipe

    raw = load_raw(path, sets)
    from vopt.recipe.levels import expand_level

    raw.data = expand_level(raw.data, raw.locations, str(raw.path or path))
    retired = _retired(raw)
    if retired:
        raise _fail(retired)
    try:
        recipe = Recipe.model_validate(raw.data)
    except ValidationError as exc:
        raise _fail(format_validation_error(exc, raw, Recipe)) from None
    problems = _plugin_problems(recipe, raw)
    if problems:
        raise _fail(problems)
    return LoadedRecipe(recipe, raw)
