"""Turn a recipe into the ordered list of steps, and say which are already cached."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

import vopt
from vopt.core.cache import Cache, step_key
from vopt.machine import tool_versions
from vopt.registry import STAGES, get_stage, get_target


@dataclass
class Step:
    name: str
    stage: Any  # Stage class
    config: BaseModel

    @property
    def transforms(self) -> bool:
        return bool(self.stage.transforms)


def make_plan(recipe: Any) -> tuple[list[Step], Any]:
    target = get_target(recipe.compile.target)
    order = list(STAGES)
    if target.quantize_after_compile:
        order.remove("quantize")
        order.insert(order.index("compile") + 1, "quantize")
    steps = []
    for name in order:
        stage = get_stage(name)
        config = stage.configure(recipe, target)
        if config is not None:
            steps.append(Step(name, stage, config))
    _check_handoffs(steps, target)
    return steps, target


def _check_handoffs(steps: list[Step], target: Any) -> None:
    """A quantization scheme whose output the target cannot compile is a recipe error, found before any
    work."""
    from vopt.errors import RecipeError
    from vopt.registry import get_scheme

    quant = next((s for s in steps if s.name == "quantize"), None)
    if quant is None or target.quantize_after_compile:
        return
    scheme = getattr(quant.config, "scheme", None)
    if scheme is None:
        return
    produced = get_scheme(scheme).output_format
    if produced not in target.input_formats:
        raise RecipeError(
            f"quantize.scheme: '{scheme}' makes {produced}, but the {target.name} target compiles "
            f"{' or '.join(target.input_formats)}; drop quantize.scheme to use the target's own scheme"
        )


def key_for(step: Step, parent_identity: str | None, target: Any) -> str:
    return step_key(key_material(step, parent_identity, target))


def key_material(step: Step, parent_identity: str | None, target: Any) -> dict[str, Any]:
    """Everything a step's cache key is the hash of; the manifest records it whole."""
    tools = [*step.stage.tools, *step.stage.extra_tools(step.config, target)]
    return {
        "vopt": vopt.__version__,
        "stage": step.name,
        "parent": parent_identity,
        "config": step.config.model_dump(mode="json"),
        "fingerprint": step.stage.fingerprint(step.config),
        "tools": tool_versions(tools),
    }


@dataclass
class PlannedStep:
    name: str
    key: str | None  # None when an earlier step is not cached, so the input is unknown
    cached: bool
    config: dict[str, Any]


def dry_run(steps: list[Step], target: Any, cache: Cache) -> list[PlannedStep]:
    """Walk the cache as far as it reaches, without running anything."""
    out: list[PlannedStep] = []
    parent: str | None = None
    known = True
    for step in steps:
        config = step.config.model_dump(mode="json")
        if not known:
            out.append(PlannedStep(step.name, None, False, config))
            continue
        key = key_for(step, parent, target)
        entry = cache.get(key)
        out.append(PlannedStep(step.name, key, entry is not None, config))
        if entry is None:
            known = False
        elif step.transforms:
            parent = entry.artifact.identity()
    return out
