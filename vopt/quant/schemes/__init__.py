"""Quantization schemes are plugins (vopt.registry.SCHEMES), one module each, declaring their own facts.
This module answers the questions the recipe loader and the quantize stage ask about them."""

from __future__ import annotations

from typing import Any

from vopt.errors import RecipeError
from vopt.registry import SCHEMES, get_scheme

# Precisions a scheme can make from integers: what a target's `int8_scheme` steps in for.
INTEGER = ("int8", "int16")


def scheme_for_precision(precision: str) -> str | None:
    """The scheme that makes this precision on every target (its `default_for`), or None."""
    return next((n for n in SCHEMES if precision in get_scheme(n).default_for), None)


def makers_of(precision: str) -> list[str]:
    return [n for n in SCHEMES if precision in get_scheme(n).precisions]


def choose(q: Any, target: Any) -> tuple[Any, str]:
    """The scheme class and precision a `quantize:` section asks for on this target (RecipeError otherwise):
    the recipe's scheme, else the scheme that owns the precision, else the target's own scheme, else the
    target's `int8_scheme` when its own scheme does not make the integer precision asked for."""
    if q.precision == "bf16":
        raise RecipeError(
            "quantize.precision: bf16 is an inference precision of the target, not a quantize "
            "scheme: set compile.precision: bf16 (openvino) instead"
        )
    name = q.scheme or (q.precision and scheme_for_precision(q.precision)) or target.quant_scheme
    if not q.scheme and name and q.precision and q.precision not in get_scheme(name).precisions:
        own = name
        # e.g. int8 on webgpu, whose own scheme makes fp16
        name = target.int8_scheme if q.precision in INTEGER else None
        if name is None:
            raise RecipeError(
                f"quantize.precision: the {target.name} target's scheme '{own}' makes "
                f"{', '.join(get_scheme(own).precisions)}, not {q.precision}; set quantize.scheme "
                f"to one that does ({', '.join(makers_of(q.precision)) or 'none registered'})"
            )
    if name is None:
        raise RecipeError(
            f"quantize: target '{target.name}' has no default quantization scheme; set "
            "quantize.scheme or compile.precision"
        )
    scheme = get_scheme(name)
    precision = q.precision or scheme.precisions[0]
    if precision not in scheme.precisions:
        raise RecipeError(
            f"quantize.precision: scheme '{name}' makes {', '.join(scheme.precisions)}, not {precision}"
        )
    return scheme, precision


def option_problems(scheme: Any, options: dict[str, Any]) -> list[tuple[tuple[Any, ...], str]]:
    """Each bad `quantize.options` entry for this scheme: (key path under quantize.options, message)."""
    from pydantic import ValidationError

    try:
        parsed = scheme.Options.model_validate(options)
    except ValidationError as exc:
        return [(tuple(e["loc"]), _option_message(scheme, e)) for e in exc.errors()]
    to = getattr(parsed, "fallback_to", None)
    if to is not None and to not in scheme.fallback_precisions:
        return [
            (
                ("fallback_to",),
                f"{to} is not available for scheme '{scheme.name}' (it falls back to "
                f"{' or '.join(scheme.fallback_precisions)})",
            )
        ]
    return []


def _option_message(scheme: Any, err: dict[str, Any]) -> str:
    key = str(err["loc"][0]) if err["loc"] else ""
    takes = ", ".join(scheme.Options.model_fields) or "no options"
    if err["type"] == "extra_forbidden":
        others = [n for n in SCHEMES if key in get_scheme(n).Options.model_fields]
        if others:
            return (
                f"applies to scheme {', '.join(others)}, not '{scheme.name}'; '{scheme.name}' takes {takes}"
            )
        from vopt.suggest import did_you_mean

        return (
            f"unknown option{did_you_mean(key, list(scheme.Options.model_fields))}; "
            f"scheme '{scheme.name}' takes {takes}"
        )
    value = err.get("input")
    if err["type"] == "literal_error":
        expected = str(err["ctx"]["expected"]).replace("'", "")  # "'a' or 'b'" -> "a or b"
        return f"{value!r} is not allowed; use {expected}"
    return f"{value!r} is not allowed; use {str(err['msg']).removeprefix('Value error, ')}"


def recipe_problems(recipe: Any, target: Any | None = None) -> list[tuple[tuple[Any, ...], str]]:
    """What the quantize section gets wrong for its scheme, found when the recipe loads: (key path, message).
    A scheme that cannot be chosen at all is left to the plan, which says why."""
    from vopt.registry import get_target

    target = target or get_target(recipe.compile.target)
    q = recipe.quantize
    held = _prompt_problems(recipe)
    if held:
        return held
    if q is None:
        # A target with an int8_scheme does not quantize in its compile step: int8 is the quantize stage's.
        wanted = target.precision(recipe.compile)
        if target.int8_scheme and wanted in INTEGER:
            return [
                (
                    ("compile", "precision"),
                    f"{wanted} on {target.name} is made by the quantize stage: add "
                    f"`quantize: {{precision: {wanted}}}` (calibration.samples sets how many images)",
                )
            ]
        return []
    if q.precision == "fp32":
        return []
    try:
        scheme, _ = choose(q, target)
    except RecipeError:
        return []
    problems = [(("quantize", "options", *loc), msg) for loc, msg in option_problems(scheme, q.options)]
    wide = [t for t in (q.search.to if q.search is not None else []) if t not in scheme.fallback_precisions]
    if wide and scheme.ranks_layers:
        problems.append(
            (
                ("quantize", "search", "to"),
                f"{', '.join(wide)} is not available for scheme '{scheme.name}' (its layers can become "
                f"{' or '.join(scheme.fallback_precisions)})",
            )
        )
    return problems


def _prompt_problems(recipe: Any) -> list[tuple[tuple[Any, ...], str]]:
    """A pipeline's calibration prompts against its validation prompts (held out, as calibration images are
    from validation images: an overlap is a recipe error), and calibration files, which a pipeline's
    components do not read (they calibrate on the inputs recorded while the pipeline runs)."""
    from vopt.quant.feeds import overlap, runs_as_pipeline

    sections: list[tuple[tuple[Any, ...], Any]] = [(("quantize",), recipe.quantize)]
    for name, over in (getattr(recipe, "components", None) or {}).items():
        if "quantize" in over.model_fields_set and over.quantize is not None:
            sections.append((("components", name, "quantize"), over.quantize))
    pipeline = recipe.validate_.pipeline if recipe.validate_ is not None else None
    problems: list[tuple[tuple[Any, ...], str]] = []
    for loc, q in sections:
        if q is None:
            continue
        prompts = q.calibration.prompts or []
        shared = overlap(prompts, pipeline.prompts) if pipeline is not None and prompts else []
        if shared:
            problems.append(
                (
                    (*loc, "calibration", "prompts"),
                    f"{shared[0]!r}{f' and {len(shared) - 1} more' if len(shared) > 1 else ''} also in "
                    "validate.pipeline.prompts: calibration prompts are held out from validation's, so that "
                    "validation does not measure on what calibration saw",
                )
            )
        if prompts and not runs_as_pipeline(recipe):
            problems.append(
                ((*loc, "calibration", "prompts"), "only a pipeline of components (diffusers) runs prompts")
            )
        c = q.calibration
        if (c.data is not None or c.synthetic) and runs_as_pipeline(recipe) and q.precision != "fp32":
            key = "data" if c.data is not None else "synthetic"
            problems.append(
                (
                    (*loc, "calibration", key),
                    "a pipeline's components calibrate on the inputs they get while the pipeline runs on "
                    "calibration.prompts, not on files or random tensors; remove it",
                )
            )
    return problems
