"""Per-component recipes. An artifact of components (a text encoder, a UNet and a VAE) runs each transform
stage on each component; the recipe's `components.<name>` section overrides the stage sections for that one
component (`quantize: null` leaves it in float, `quantize: {calibration: {samples: 8}}` changes one key), so
the component's config, and with it its cache key, is the recipe's with its own changes on top."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vopt.recipe.sections.base import Section
from vopt.recipe.sections.export import ExportSection
from vopt.recipe.sections.quantize import QuantizeSection


class ComponentOverrides(Section):
    """Stage sections for one component, merged over the recipe's own (unset keys keep the recipe's value;
    `null` turns the stage off for this component)."""

    export: ExportSection | None = Field(default=None, description="Export settings for this component.")
    quantize: QuantizeSection | None = Field(
        default=None, description="Quantization for this component; null keeps it in float."
    )


def _merge(base: Any, over: Any) -> Any:
    if isinstance(base, dict) and isinstance(over, dict):
        return {k: _merge(base.get(k), v) if k in base else v for k, v in {**base, **over}.items()}
    return over


_CACHE: dict[tuple[int, str], Any] = {}


def component_recipe(recipe: Any, name: str) -> Any:
    """The recipe as component `name` sees it: its `components.<name>` sections merged over the recipe's."""
    overrides = (getattr(recipe, "components", None) or {}).get(name)
    if overrides is None:
        return recipe
    key = (id(recipe), name)
    if key in _CACHE and _CACHE[key][0] is recipe:
        return _CACHE[key][1]
    data = recipe.model_dump(by_alias=True)
    for section in overrides.model_fields_set:
        value = getattr(overrides, section)
        data[section] = (
            None
            if value is None
            else _merge(data.get(section) or {}, value.model_dump(by_alias=True, exclude_unset=True))
        )
    view = type(recipe).model_validate(data)
    _CACHE[key] = (recipe, view)
    return view


def unknown_components(recipe: Any, names: list[str]) -> list[str]:
    """`components.<name>` sections that name no component of the model (a typo, or another model's)."""
    return sorted(set(getattr(recipe, "components", None) or {}) - set(names))
