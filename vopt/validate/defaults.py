"""Default gates per task, so a recipe without gates cannot ship a broken artifact silently. Recipe gates on
the same metric replace these (loosen or tighten); `default_gates: false` turns them off.

Calibrated on this machine: int8 of the tiny random-weight test models and of the shipped recipes measures
centered cosine >= 0.95 and top-1 agreement >= 0.9, a real EfficientNet-Lite0 0.99 and 0.97; the failures the
defaults must catch measured centered cosine 0.79 / top-1 agreement 0.62 (a tiny LeViT, OpenVINO int8) and
cosine 0.86 / 0.65 (PP-OCRv4 det, OpenVINO / QNN int8).

The rule (issue 29; docs/validation.md): a default sits between what good and poor real builds measured, and
follows the output's structure and the evidence.
- top-1 agreement >= 0.95 (it was 0.8): good real int8 builds measured 0.972 (EfficientNet-Lite0 on cpu,
  n=250) and 1.000 (a 4-class orientation classifier on QNN's HTP simulator, n=89); a poor one passed at 0.938
  (a 4-class classifier on QNN). Interval-aware: the estimate decides where the check resolves 0.95 (139
  images: 0.95 told from 0.90); on fewer it fails only when the whole 95% interval is below 0.95, so one
  near-tie flip among 9 photos does not fail a working model, two do (vopt.validate.confidence.unresolved).
- top-1 drop against labels <= 0 points, decided by its interval: it fails only when the whole interval is
  above zero, i.e. the labelled images show a loss (1.8 points with an interval that excluded zero passed
  before). A recipe that accepts a loss says how much (`top1_drop: "<=1"`).
- per-position agreement >= 0.99 for `[B, T, C]` sequence scores (vopt.validate.sequence): a text recognizer
  passed at centered cosine 0.915 with position agreement 0.926, 33 of 64 lines read the same (OpenVINO int8).
- no top-5 for five classes or fewer (vopt.validate.classification.has_top5): it is 100% for any artifact."""

from __future__ import annotations

# Outputs of per-position class scores ([B, T, C], vopt.validate.sequence): gated only where measured.
SEQUENCE = {"position_agreement": ">=0.99"}
DEFAULT_GATES: dict[str, dict[str, str]] = {
    "image-classification": {
        "centered_cosine": ">=0.9",
        "top1_agreement": ">=0.95",
        "top1_drop": "<=0",
        **SEQUENCE,
    },
    # per-query outputs: centered cosine swings on near-tied random heads (0.84 with box agreement 1.000)
    "object-detection": {"cosine": ">=0.95", "box_agreement": ">=0.8"},
    "semantic-segmentation": {"centered_cosine": ">=0.9"},
    "feature-extraction": {"centered_cosine": ">=0.9", **SEQUENCE},
    # a whole denoising loop's final images against PyTorch's (fp32 measures > 60 dB here, fp16 > 40 dB)
    "text-to-image": {"psnr_db": ">=30", "ssim": ">=0.95", "latent_cosine": ">=0.99"},
    # ... with integer components (a UNet in int8): between what int8 builds of the tiny pipeline measured
    # (lowest: ORT QDQ on the cpu target, 22.1 dB, SSIM 0.840, latent cosine 0.893; NNCF full and hybrid
    # 28.8-28.9 dB, 0.969, 0.978; weights-only 64.7 dB) and what a different picture measures (the same
    # prompts from another seed: 13 dB, SSIM 0.02, latent cosine 0.0). docs/diffusion.md has the runs.
    "text-to-image-int8": {"psnr_db": ">=20", "ssim": ">=0.75", "latent_cosine": ">=0.85"},
    # one component of a pipeline (a diffusion UNet), quantized, against its float self on the inputs the
    # pipeline gave it (held-out prompts): its outputs only, the image is validate's gate. Good int8 builds
    # measured cosine 0.982 / SQNR 14.4 dB (the tiny UNet, ORT QDQ), 0.996 / 20.7 dB (NNCF), 0.997-0.999
    # (the VAE halves); a broken one (CLIP's text encoder in int8: its causal mask is float-min) 0.13 / -2.4.
    "pipeline-component": {"cosine": ">=0.95", "sqnr_db": ">=10"},
}
# Precisions of quantized components whose pipeline gates are the task's `-int8` table.
INTEGER_PRECISIONS = ("int8", "int16", "int4")
GENERIC = {"centered_cosine": ">=0.9", **SEQUENCE}
# Detections post-processed in the graph (boxes, scores, labels, num_detections: NMS or top-k, thresholded):
# rows are padded and cut at a score, so a cosine over them says little (0.93 on a YOLO11n int8 whose boxes
# agreed at 0.978); matched boxes and the mAP of the artifact's detections against the float model's do. Good
# int8 YOLO11n builds measured box agreement 0.96-0.98 and mAP50-95 vs reference 0.82-0.84 (32 held-out
# images); fp32 measures 1.000 on both.
DETECTIONS_IN_GRAPH = {"box_agreement": ">=0.9", "map50_95_vs_reference": ">=0.7"}


# On random weights the class scores are near-tied, so top-1 flips by chance either way: it says nothing about
# the artifact there. (Box agreement is gated only when the reference has detections.)
CHANCE_METRICS = ("top1_agreement", "position_agreement", "top1_drop")


# Defaults on a loss measured against labels: they fail when the whole 95% interval is past the allowed value
# (the images show the loss), not on the estimate alone (vopt.validate.confidence, mode "excludes").
DECIDED_BY_INTERVAL = frozenset({"top1_drop"})


def gates_for(
    task: str | None,
    recipe_gates: dict[str, str],
    enabled: bool = True,
    random_weights: bool = False,
    outputs: list[str] | tuple[str, ...] = (),
) -> tuple[dict[str, str], set[str]]:
    """(all gates, the names that are defaults): recipe gates first, then the task defaults they leave.
    `outputs`: the artifact's output names (a detector's post-processed contract has its own defaults)."""
    table = DEFAULT_GATES.get(task or "image-classification", GENERIC)
    if task == "object-detection" and "num_detections" in outputs:
        table = DETECTIONS_IN_GRAPH
    defaults = dict(table) if enabled else {}
    if random_weights:
        defaults = {k: v for k, v in defaults.items() if k not in CHANCE_METRICS}
    extra = {k: v for k, v in defaults.items() if k not in recipe_gates}
    return {**recipe_gates, **extra}, set(extra)
