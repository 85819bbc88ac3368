"""A labelled detection dataset of rendered shapes on real photos, regenerated bit for bit from a seed.

Six classes of filled shapes (each with its own hue family, 20% of them in any hue so shape matters too;
solid, striped, checkered or noisy fills; shading; soft edges), 1 to 6 per 320x320 image, of varied size,
aspect and rotation, partly outside the image or behind each other (every labelled object keeps at least 60%
of its area visible; its box is the box of its visible pixels), pasted on random crops of real photos:
the ImageNet sample photos (``$VOPT_IMAGENET_SAMPLES``, else ``../shared/data/imagenet-samples`` beside the
repository) and scikit-image's bundled photographs. Each split draws its backgrounds from its own photos, so
the held-out images share no photo with the training or validation images.

Written in the Ultralytics layout (``images/<split>/NNNNNN.jpg``, ``labels/<split>/NNNNNN.txt`` with
``class cx cy w h`` normalised) plus a COCO-style ``<split>.json`` (image id = the file's number, category
id = class index + 1, boxes ``[x, y, w, h]`` in pixels: the ids Ultralytics' ``save_json`` writes).

Image ``i`` of a split depends only on ``(seed, split, i)``: ``make_split(root, "heldout", 64, 0)`` writes
the first 64 of the 100 images ``make_split(root, "heldout", 100, 0)`` writes. Needs numpy, Pillow and
scikit-image (the ``dev`` extra); no torch, no Ultralytics.

    python scripts/yolo_shapes.py datasets/yolo-shapes --split heldout --n 100    # one split
"""

from __future__ import annotations

import argparse
import colorsys
import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
CLASSES = ("circle", "rectangle", "triangle", "star", "cross", "ring")
HUES = (0.0, 220.0, 120.0, 55.0, 300.0, 185.0)  # each class's hue family, degrees
IMGSZ = 320
SPLITS = {"train": 0, "val": 1, "heldout": 2}  # the split's id in the seed
# Fixed default sizes: what scripts/train_yolo.py trains on and what the fixture's metrics were measured on.
DEFAULT_N = {"train": 1500, "val": 200, "heldout": 100}
# ImageNet photos by their index in sorted order, i % 10: 0-6 train, 7-8 val, 9 held-out.
IMAGENET_SLOTS = {"train": range(7), "val": range(7, 9), "heldout": range(9, 10)}
SKIMAGE_PHOTOS = {
    "train": (
        "astronaut",
        "coffee",
        "chelsea",
        "rocket",
        "immunohistochemistry",
        "camera",
        "brick",
        "grass",
        "coins",
        "page",
    ),
    "val": ("hubble_deep_field", "gravel", "clock"),
    "heldout": ("retina", "colorwheel", "moon", "text"),
}
MIN_VISIBLE = 0.6  # an object keeps at least this fraction of its area visible (in the image, not covered)
SUPERSAMPLE = 4  # shapes are drawn at 4x and box-filtered down: anti-aliased edges


@dataclass(frozen=True)
class Split:
    """What ``make_split`` wrote: the images, their YOLO label files and the COCO-style JSON."""

    root: Path
    name: str
    images: tuple[Path, ...]
    labels: tuple[Path, ...]
    coco_json: Path
    num_objects: int


def imagenet_dir() -> Path:
    env = os.environ.get("VOPT_IMAGENET_SAMPLES")
    return Path(env) if env else REPO.parent / "shared" / "data" / "imagenet-samples"


@lru_cache(maxsize=4)
def _background_names(split: str, photos_dir: str) -> tuple[str, ...]:
    files = sorted(p.name for p in Path(photos_dir).glob("*.JPEG"))
    if len(files) < 100:
        raise FileNotFoundError(
            f"{photos_dir}: expected the 500 ImageNet sample photos (*.JPEG); set VOPT_IMAGENET_SAMPLES"
        )
    slots = IMAGENET_SLOTS[split]
    return tuple(f for i, f in enumerate(files) if i % 10 in slots) + tuple(
        f"skimage:{n}" for n in SKIMAGE_PHOTOS[split]
    )


@lru_cache(maxsize=64)
def _load_photo(name: str, photos_dir: str) -> np.ndarray:
    """An RGB uint8 photo (cached: a split reuses each background many times)."""
    if name.startswith("skimage:"):
        import skimage.data

        arr = np.asarray(getattr(skimage.data, name.split(":", 1)[1])())
        if arr.dtype == bool:
            arr = arr.astype(np.uint8) * 255
        if arr.ndim == 2:
            arr = np.stack([arr] * 3, axis=-1)
        return np.ascontiguousarray(arr[..., :3].astype(np.uint8))
    with Image.open(Path(photos_dir) / name) as im:
        return np.asarray(im.convert("RGB"))


def _background(rng: np.random.Generator, split: str, photos_dir: str) -> np.ndarray:
    names = _background_names(split, photos_dir)
    photo = _load_photo(names[int(rng.integers(len(names)))], photos_dir)
    h, w = photo.shape[:2]
    side = int(min(h, w) * rng.uniform(0.35, 1.0))
    y0, x0 = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    crop = Image.fromarray(photo[y0 : y0 + side, x0 : x0 + side]).resize((IMGSZ, IMGSZ), Image.BILINEAR)
    out = np.asarray(crop, dtype=np.float32)
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def _outline(cls: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Polygons in unit coordinates (within [-1, 1]); the first is filled, the rest are holes."""
    if cls in (0, 5):  # circle, ring
        t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
        unit = np.stack([np.cos(t), np.sin(t)], axis=1)
        return [unit] if cls == 0 else [unit, unit * rng.uniform(0.45, 0.62)]
    if cls == 1:  # rectangle (the aspect below stretches it)
        return [np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]], dtype=np.float64)]
    if cls == 2:  # triangle
        t = np.deg2rad(np.array([90.0, 210.0, 330.0]) + rng.uniform(-12, 12, 3))
        return [np.stack([np.cos(t), np.sin(t)], axis=1)]
    if cls == 3:  # five-pointed star
        t = np.pi / 2 + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.5))
        return [np.stack([r * np.cos(t), r * np.sin(t)], axis=1)]
    a = rng.uniform(0.28, 0.4)  # cross: a plus sign with arms of half-width a
    return [
        np.array(
            [
                [-a, -1],
                [a, -1],
                [a, -a],
                [1, -a],
                [1, a],
                [a, a],
                [a, 1],
                [-a, 1],
                [-a, a],
                [-1, a],
                [-1, -a],
                [-a, -a],
            ],
            dtype=np.float64,
        )
    ]


def _render(cls: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One object: its alpha (float 0-1), its RGB fill (float) and its top-left offset, in image pixels."""
    size = float(np.exp(rng.uniform(np.log(20), np.log(140))))  # the longer side, log-uniform
    aspect = rng.uniform(0.65, 1.5)
    theta = rng.uniform(0, 2 * np.pi)
    sx, sy = size / 2 * min(1.0, aspect), size / 2 * min(1.0, 1 / aspect)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    polys = [(p * [sx, sy]) @ rot.T for p in _outline(cls, rng)]
    centre = rng.uniform(-0.1 * IMGSZ, 1.1 * IMGSZ, 2)
    lo = np.floor(polys[0].min(axis=0) + centre).astype(int) - 1
    hi = np.ceil(polys[0].max(axis=0) + centre).astype(int) + 2
    w, h = hi - lo
    mask = Image.new("L", (int(w) * SUPERSAMPLE, int(h) * SUPERSAMPLE), 0)
    draw = ImageDraw.Draw(mask)
    for i, p in enumerate(polys):
        pts = ((p + centre - lo) * SUPERSAMPLE).round(2)
        draw.polygon([tuple(q) for q in pts.tolist()], fill=255 if i == 0 else 0)
    alpha = np.asarray(mask.reduce(SUPERSAMPLE), dtype=np.float32) / 255.0

    hue = HUES[cls] + rng.uniform(-15, 15) if rng.random() < 0.8 else rng.uniform(0, 360)
    rgb = np.array(colorsys.hsv_to_rgb((hue % 360) / 360, rng.uniform(0.55, 1.0), rng.uniform(0.5, 1.0)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = int(rng.integers(4))
    if kind == 1:  # stripes at a random angle
        phi, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        tex = (np.sin((xx * np.cos(phi) + yy * np.sin(phi)) * 2 * np.pi / period) > 0).astype(np.float32)
    elif kind == 2:  # checker
        cell = rng.uniform(3, 9)
        tex = ((np.floor(xx / cell) + np.floor(yy / cell)) % 2).astype(np.float32)
    elif kind == 3:  # noise
        tex = rng.random((h, w)).astype(np.float32)
    else:
        tex = np.zeros((h, w), np.float32)
    shade = 1 + rng.uniform(-0.25, 0.25) * (
        (xx - w / 2) * np.cos(theta) + (yy - h / 2) * np.sin(theta)
    ) / max(w, h)
    fill = rgb[None, None, :] * 255 * shade[..., None] * (1 - rng.uniform(0.25, 0.5) * tex[..., None])
    return alpha, np.clip(fill, 0, 255).astype(np.float32), lo


def _scene(
    rng: np.random.Generator, split: str, photos_dir: str
) -> tuple[np.ndarray, list[tuple[int, tuple]]]:
    img = _background(rng, split, photos_dir)
    owner = np.full((IMGSZ, IMGSZ), -1, dtype=np.int32)
    areas: list[int] = []
    classes: list[int] = []
    for _ in range(int(rng.integers(1, 7))):
        cls = int(rng.integers(len(CLASSES)))
        for _attempt in range(30):
            alpha, fill, (x0, y0) = _render(cls, rng)
            h, w = alpha.shape
            solid = alpha > 0.5
            area = int(solid.sum())
            # The part inside the image.
            ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + w, IMGSZ), min(y0 + h, IMGSZ)
            if area < 30 or ix1 <= ix0 or iy1 <= iy0:
                continue
            sub = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            win = (slice(iy0, iy1), slice(ix0, ix1))
            if solid[sub].sum() < MIN_VISIBLE * area:
                continue
            covered = np.bincount(owner[win][solid[sub]] + 1, minlength=len(areas) + 1)[1:]
            visible = np.bincount(owner.ravel() + 1, minlength=len(areas) + 1)[1:]
            if any(visible[k] - covered[k] < MIN_VISIBLE * areas[k] for k in range(len(areas))):
                continue
            a = alpha[sub][..., None]
            img[win] = img[win] * (1 - a) + fill[sub] * a
            owner[win][solid[sub]] = len(areas)
            areas.append(area)
            classes.append(cls)
            break
    img = (img - 128) * rng.uniform(0.85, 1.15) + 128 + rng.uniform(-15, 15)  # contrast, brightness
    objects = []
    for k, cls in enumerate(classes):
        ys, xs = np.nonzero(owner == k)
        objects.append((cls, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1, len(xs))))
    return np.clip(img, 0, 255).round().astype(np.uint8), objects


def make_split(root: str | Path, split: str, n: int, seed: int = 0) -> Split:
    """Write ``n`` images of ``split`` ("train", "val" or "heldout") under ``root`` and return what it wrote.

    Deterministic: image ``i`` depends only on ``(seed, split, i)``. Rewrites the split's folders."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    root = Path(root)
    photos_dir = str(imagenet_dir())
    img_dir, lbl_dir = root / "images" / split, root / "labels" / split
    for d in (img_dir, lbl_dir):
        d.mkdir(parents=True, exist_ok=True)
        for old in d.iterdir():
            old.unlink()
    (root / "labels" / f"{split}.cache").unlink(missing_ok=True)  # Ultralytics' label cache
    images, labels, coco_images, coco_anns = [], [], [], []
    for i in range(n):
        rng = np.random.default_rng(np.random.SeedSequence([seed, SPLITS[split], i]))
        img, objects = _scene(rng, split, photos_dir)
        stem = f"{i:06d}"
        img_path, lbl_path = img_dir / f"{stem}.jpg", lbl_dir / f"{stem}.txt"
        Image.fromarray(img).save(img_path, quality=92)
        rows = []
        for cls, (x0, y0, x1, y1, area) in objects:
            cx, cy, bw, bh = (
                (x0 + x1) / 2 / IMGSZ,
                (y0 + y1) / 2 / IMGSZ,
                (x1 - x0) / IMGSZ,
                (y1 - y0) / IMGSZ,
            )
            rows.append(f"{cls} {cx:.6f} {cy:.6f} {bw:.6f} {bh:.6f}")
            coco_anns.append(
                {
                    "id": len(coco_anns) + 1,
                    "image_id": i,
                    "category_id": cls + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": area,
                    "iscrowd": 0,
                }
            )
        lbl_path.write_text("".join(r + "\n" for r in rows))
        coco_images.append({"id": i, "file_name": f"{stem}.jpg", "width": IMGSZ, "height": IMGSZ})
        images.append(img_path)
        labels.append(lbl_path)
    coco = {
        "info": {"description": f"yolo_shapes {split} split, seed {seed}, {n} images"},
        "images": coco_images,
        "annotations": coco_anns,
        "categories": [{"id": k + 1, "name": name} for k, name in enumerate(CLASSES)],
    }
    coco_json = root / f"{split}.json"
    coco_json.write_text(json.dumps(coco, indent=1))
    write_data_yaml(root)
    return Split(root, split, tuple(images), tuple(labels), coco_json, len(coco_anns))


def write_data_yaml(root: str | Path) -> Path:
    """Ultralytics' dataset file: train/val for training, the held-out split as ``test``."""
    root = Path(root).resolve()
    names = "".join(f"  {k}: {name}\n" for k, name in enumerate(CLASSES))
    path = root / "shapes.yaml"
    path.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\ntest: images/heldout\nnames:\n{names}"
    )
    return path


def tree_sha256(root: str | Path) -> str:
    """sha256 over every image, label and JSON file under ``root`` (paths and bytes, in sorted order)."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in {".jpg", ".txt", ".json"}:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--split", choices=sorted(SPLITS), action="append", help="default: all three")
    ap.add_argument("--n", type=int, help="images per split (default: train 1500, val 200, heldout 100)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for split in args.split or list(SPLITS):
        s = make_split(args.root, split, args.n or DEFAULT_N[split], args.seed)
        print(f"{split}: {len(s.images)} images, {s.num_objects} objects -> {s.root / 'images' / split}")
    print(f"sha256 {tree_sha256(args.root)}")


if __name__ == "__main__":
    main()
