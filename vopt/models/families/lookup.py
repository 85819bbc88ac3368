"""Finding a model's family: by name (the recipe's `family:`), by transformers model_type, or the task's
generic family. Families are registered plugins (vopt.registry.FAMILIES, entry-point group
`vopt.families`)."""

from __future__ import annotations

from vopt.models.families.base import Family
from vopt.models.families.generic import generic_family

_loaded: dict[str, type[Family]] | None = None


def all_families() -> dict[str, type[Family]]:
    """Every registered family class, by name (imported on first use)."""
    global _loaded
    from vopt.registry import FAMILIES, load_object

    if _loaded is None or set(_loaded) != set(FAMILIES):
        _loaded = {name: load_object(spec) for name, spec in FAMILIES.items()}
    return dict(_loaded)


def get_family(name: str) -> Family:
    from vopt.errors import RecipeError
    from vopt.suggest import did_you_mean

    fams = all_families()
    if name not in fams:
        raise RecipeError(
            f"unknown family '{name}'{did_you_mean(name, fams)}; known: {', '.join(sorted(fams))}"
        )
    return fams[name]()


def family_for_task(family: Family, task: str) -> Family:
    """The family as a model of `task`: itself, or (e.g. a ViT used as a feature extractor) the task's generic
    family, with its outputs, carrying this family's preprocessing."""
    if task == family.task:
        return family
    generic = generic_family(task)
    generic.mean, generic.std = family.mean, family.std  # type: ignore[misc]
    generic.image_size, generic.resize = family.image_size, family.resize  # type: ignore[misc]
    return generic


def family_for(model_type: str | None, task: str | None = None) -> Family:
    """The registered family for a transformers model_type, or the generic one for the task."""
    for cls in all_families().values():
        if model_type in cls.model_types:
            return cls()
    return generic_family(task or "image-classification")
