"""Shared steps for sources that give a plain torch module (not a transformers model)."""

from __future__ import annotations

from typing import Any

from vopt.errors import BuildError, first_line
from vopt.models.families.base import Family
from vopt.models.families.lookup import family_for, get_family
from vopt.models.sources.base import LoadedModel, load_state_dict


def family_of_spec(spec: Any) -> Family:
    return get_family(spec.family) if spec.family else family_for(None, spec.task or "image-classification")


def load_weights(model: Any, path: Any, what: str = "model.weights") -> None:
    state = load_state_dict(path, what=what)
    try:
        result = model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).strip().splitlines() if ln.strip()]
        detail = " ".join(lines[1:4]) if len(lines) > 1 else first_line(exc)
        raise BuildError(
            f"checkpoint {path} does not match the architecture: {detail[:500]}", stage="load"
        ) from None
    del result


def finish(
    model: Any, spec: Any, *, random: bool, notes: list[str], build: dict[str, Any] | None = None
) -> LoadedModel:
    """eval(), sane random init when asked, the family's export fixes; marks the module as positional."""
    family = family_of_spec(spec)
    model.eval()
    if random:
        from vopt.models.init import sane_random_init

        sane_random_init(model, spec.input.shape, seed=spec.seed)
    model = family.prepare(model)
    model._vopt_positional = True  # plain modules take the image tensor positionally
    reference = (
        {"build": {**build, "family": family.name, "task": spec.task or family.task}} if build else None
    )
    return LoadedModel(
        model,
        family,
        spec.task or family.task,
        labels=spec.labels,
        random_weights=random,
        notes=[*notes, *family.applied],
        reference=reference,
    )
