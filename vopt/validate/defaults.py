"""Default gates per task, so a recipe without gates cannot ship a broken artifact silently. Recipe gates on
the same metric replace these (loosen or tighten); `default_gates: false` turns them off.

Calibrated on this machine: int8 of the tiny random-weight test models and of the shipped recipes measures
centered cosine >= 0.95 and top-1 agreement >= 0.9, a real EfficientNet-Lite0 0.99 and 0.97; the failures the
defaults must catch measured centered cosine 0.79 / top-1 agreement 0.62 (a tiny LeViT, OpenVINO int8) and
cosine 0.86 / 0.65 (PP-OCRv4 det, OpenVINO / QNN int8)."""

from __future__ import annotations

DEFAULT_GATES: dict[str, dict[str, str]] = {
    "image-classification": {"centered_cosine": ">=0.9", "top1_agreement": ">=0.8"},
    # per-query outputs: centered cosine swings on near-tied random heads (0.84 with box agreement 1.000)
    "object-detection": {"cosine": ">=0.95", "box_agreement": ">=0.8"},
    "semantic-segmentation": {"centered_cosine": ">=0.9"},
    "feature-extraction": {"centered_cosine": ">=0.9"},
    # a whole denoising loop's final images against PyTorch's (fp32 measures > 60 dB here, fp16 > 40 dB)
    "text-to-image": {"psnr_db": ">=30", "ssim": ">=0.95", "latent_cosine": ">=0.99"},
}
GENERIC = {"centered_cosine": ">=0.9"}


# On random weights the class scores are near-tied, so top-1 flips by chance either way: it says nothing about
# the artifact there. (Box agreement is gated only when the reference has detections.)
CHANCE_METRICS = ("top1_agreement",)


def gates_for(
    task: str | None, recipe_gates: dict[str, str], enabled: bool = True, random_weights: bool = False
) -> tuple[dict[str, str], set[str]]:
    """(all gates, the names that are defaults): recipe gates first, then the task defaults they leave."""
    defaults = dict(DEFAULT_GATES.get(task or "image-classification", GENERIC)) if enabled else {}
    if random_weights:
        defaults = {k: v for k, v in defaults.items() if k not in CHANCE_METRICS}
    extra = {k: v for k, v in defaults.items() if k not in recipe_gates}
    return {**recipe_gates, **extra}, set(extra)
