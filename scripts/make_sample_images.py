"""Regenerate vopt/data/samples from scikit-image's bundled photographs (public domain / CC0).

Run once by a developer: .venv/bin/python scripts/make_sample_images.py
The images are shipped so that nothing at build or test time needs scikit-image or a network.
"""

from pathlib import Path

import numpy as np
import skimage.data as d
from PIL import Image

OUT = Path(__file__).resolve().parent.parent / "vopt" / "data" / "samples"
RGB = [
    "astronaut",
    "coffee",
    "chelsea",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "colorwheel",
]
GRAY = ["camera", "page", "text", "brick", "grass", "gravel", "moon", "coins", "clock"]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name in RGB:
        img = Image.fromarray(getattr(d, name)()).convert("RGB")
        img.thumbnail((320, 320))
        img.save(OUT / f"{name}.jpg", quality=90)
    for name in GRAY:
        img = Image.fromarray(getattr(d, name)().astype(np.uint8))
        img.thumbnail((320, 320))
        img.save(OUT / f"{name}.png")
    logo = Image.fromarray(d.logo())  # RGBA
    logo.thumbnail((320, 320))
    logo.save(OUT / "logo.png")


if __name__ == "__main__":
    main()
