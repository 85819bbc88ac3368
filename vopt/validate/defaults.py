"""Default gates per task, so a recipe without gates cannot ship a broken artifact silently. Recipe gates on
the same metric replace these (loosen or tighten); `default_gates: false` turns them off.

Calibrated on this machine: int8 of the tiny random-weight test models and of the shipped recipes measures
centered cosine >= 0.95 and top-1 agreement >= 0.9, a real EfficientNet-Lite0 0.99 and 0.97; the failures the
defaults must catch measured centered cosine 0.79 / top-1 agreement 0.62 (a tiny LeViT, OpenVINO int8) and
cosine 0.86 / 0.65 (PP-OCRv4 det, OpenVINO / QNN int8)."""

from __future__ import annotations

DEFAULT_GATES: dict[str, dict[str, str]] = {
    "image-classification": {"centered_cosine": ">=0.9", "top1_agreement": ">=0.8"},
    "object-detection": {"centered_cosine": ">=0.9", "box_agreement": ">=0.8"},
    "semantic-segmentation": {"centered_cosine": ">=0.9"},
    "feature-extraction": {"centered_cosine": ">=0.9"},
}
GENERIC = {"centered_cosine": ">=0.9"}


def gates_for(task: str | None, recipe_gates: dict[str, str], enabled: bool = True) -> tuple[dict[str, str], set[str]]:
    """(all gates, the names that are defaults): recipe gates first, then the task defaults they leave."""
    defaults = dict(DEFAULT_GATES.get(task or "image-classification", GENERIC)) if enabled else {}
    extra = {k: v for k, v in defaults.items() if k not in recipe_gates}
    return {**recipe_gates, **extra}, set(extra)
