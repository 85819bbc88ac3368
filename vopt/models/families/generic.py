"""Any transformers image model without a family module: defaults by task."""

from __future__ import annotations

from vopt.models.families.base import Family

_OUTPUTS = {
    "image-classification": ("logits",),
    "object-detection": ("logits", "pred_boxes"),
    "semantic-segmentation": ("logits",),
    "feature-extraction": ("last_hidden_state",),
}


def generic_family(task: str) -> Family:
    cls = type(
        "GenericFamily",
        (Family,),
        {"name": "generic", "task": task, "outputs": _OUTPUTS.get(task, ("logits",))},
    )
    return cls()
