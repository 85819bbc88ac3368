"""Any transformers image model without a family module: defaults by task."""

from __future__ import annotations

from typing import Any

from vopt.models.families.base import Family

_OUTPUTS = {
    "image-classification": ("logits",),
    "object-detection": ("logits", "pred_boxes"),
    "semantic-segmentation": ("logits",),
    "feature-extraction": ("last_hidden_state",),
}


def generic_family(task: str, scoring: str | None = None) -> Family:
    """The family for `task`; a detector's `scoring` is a fact of its config (scoring_from_config), since no
    family module declares it."""
    if scoring is None and task == "object-detection":
        scoring = "softmax-no-object"
    cls = type(
        "GenericFamily",
        (Family,),
        {"name": "generic", "task": task, "outputs": _OUTPUTS.get(task, ("logits",)), "scoring": scoring},
    )
    return cls()


def scoring_from_config(config: Any) -> str | None:
    """How a transformers detector scores its classes, as its config says: `use_focal_loss` (RT-DETR v1/v2,
    D-FINE) decides; a `focal_alpha` (Deformable, Conditional and DAB DETR, Grounding DINO) means a sigmoid
    focal-loss head with no no-object class; None when the config says neither (DETR, YOLOS: softmax)."""
    focal = getattr(config, "use_focal_loss", None)
    if focal is not None:
        return "sigmoid" if focal else "softmax-no-object"
    return "sigmoid" if getattr(config, "focal_alpha", None) is not None else None
