"""Ground-truth boxes for detection images, in the two layouts detectors are trained on:

- YOLO txt: `labels/<split>/name.txt` beside `images/<split>/name.jpg` (Ultralytics' rule: the last
  `/images/` of the path becomes `/labels/`), or `name.txt` next to the image; one `class cx cy w h` line per
  object, normalized to the image;
- COCO JSON: `validate.labels: instances.json` (or a `*.json` at the data folder or its parent that names the
  images): `images` (file_name, width, height), `annotations` (image_id, category_id, bbox [x, y, w, h] in
  pixels, iscrowd), `categories`. Class index = the category's position in id order (COCO's 80 categories
  become 0-79 as in Ultralytics; a `category_id` of index + 1 becomes index).

Boxes come back in the model's input pixels: vopt's contract resizes the image to the input size (no crop, no
padding), so a normalized box times the input size, or a pixel box times input / image size, is exact."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vopt.errors import RecipeError, first_line


@dataclass
class DetectionLabels:
    """Per image file: boxes [N, 4] (x1, y1, x2, y2, input pixels), class index [N], crowd flags [N]."""

    boxes: dict[Path, np.ndarray]
    classes: dict[Path, np.ndarray]
    crowd: dict[Path, np.ndarray]
    source: str
    names: list[str] = field(default_factory=list)

    def covers(self, files: list[Path]) -> bool:
        return all(f in self.boxes for f in files)


def find_detection_labels(
    data: str | list[str] | None, files: list[Path], size: list[int], explicit: str | None = None
) -> DetectionLabels | None:
    """Labels for every one of `files` (YOLO txt, or a COCO JSON), boxes in input pixels for `size` [h, w];
    None when the data has no labels for all of them. `explicit`: a COCO JSON (or "none")."""
    if explicit == "none" or not files:
        return None
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise RecipeError(f"validate.labels: labels file not found: {explicit}")
        found = read_coco(path, files, size)
        if found is None:
            raise RecipeError(
                f"validate.labels: {explicit} labels none of the {len(files)} validation images"
            )
        return found
    yolo = read_yolo_txt(files, size)
    if yolo is not None:
        return yolo
    roots = [Path(s).expanduser() for s in ([data] if isinstance(data, str) else (data or []))]
    for root in roots:
        for folder in (root, root.parent, root.parent.parent):
            for candidate in sorted(folder.glob("*.json")) if folder.is_dir() else []:
                found = read_coco(candidate, files, size, quiet=True)
                if found is not None and found.covers(files):
                    return found
    return None


def yolo_label_file(image: Path) -> Path:
    text = image.as_posix()
    if "/images/" in text:
        head, _, tail = text.rpartition("/images/")
        return Path(head + "/labels/" + tail).with_suffix(".txt")
    return image.with_suffix(".txt")


def read_yolo_txt(files: list[Path], size: list[int]) -> DetectionLabels | None:
    """Ultralytics' txt labels for every file, or None when any image has no label file."""
    h, w = size
    boxes, classes, crowd = {}, {}, {}
    for f in files:
        txt = yolo_label_file(f)
        if not txt.is_file():
            return None
        rows = []
        for n, line in enumerate(txt.read_text().splitlines(), 1):
            parts = line.split()
            if not parts:
                continue
            try:
                rows.append([float(v) for v in parts[:5]])
            except ValueError:
                raise RecipeError(f"{txt}:{n}: expected `class cx cy w h`, got '{line[:80]}'") from None
            if len(rows[-1]) != 5:
                raise RecipeError(f"{txt}:{n}: expected `class cx cy w h`, got '{line[:80]}'")
        a = np.asarray(rows, np.float64).reshape(-1, 5)
        cx, cy, bw, bh = a[:, 1] * w, a[:, 2] * h, a[:, 3] * w, a[:, 4] * h
        boxes[f] = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], 1)
        classes[f] = a[:, 0].astype(np.int64)
        crowd[f] = np.zeros(len(a), bool)
    where = yolo_label_file(files[0]).parent
    return DetectionLabels(boxes, classes, crowd, f"YOLO txt labels ({where})")


def read_coco(path: Path, files: list[Path], size: list[int], quiet: bool = False) -> DetectionLabels | None:
    """A COCO JSON's boxes for `files` (matched by file name), or None when it names none of them."""
    try:
        coco = json.loads(path.read_text())
        images = {Path(im["file_name"]).name: im for im in coco["images"]}
        cats = sorted(int(c["id"]) for c in coco["categories"])
        names = {int(c["id"]): str(c.get("name", c["id"])) for c in coco["categories"]}
        anns = coco["annotations"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if quiet:
            return None
        raise RecipeError(f"validate.labels: {path} is not a COCO JSON: {first_line(exc)}") from None
    index = {cid: i for i, cid in enumerate(cats)}
    by_image: dict[int, list[dict]] = {}
    for a in anns:
        by_image.setdefault(int(a["image_id"]), []).append(a)
    h, w = size
    boxes, classes, crowd = {}, {}, {}
    for f in files:
        im = images.get(f.name)
        if im is None:
            continue
        sx, sy = w / float(im["width"]), h / float(im["height"])
        rows = by_image.get(int(im["id"]), [])
        b = np.asarray([a["bbox"] for a in rows], np.float64).reshape(-1, 4)
        boxes[f] = np.stack(
            [b[:, 0] * sx, b[:, 1] * sy, (b[:, 0] + b[:, 2]) * sx, (b[:, 1] + b[:, 3]) * sy], 1
        )
        classes[f] = np.asarray([index[int(a["category_id"])] for a in rows], np.int64)
        crowd[f] = np.asarray([bool(a.get("iscrowd", 0)) for a in rows], bool)
    if not boxes:
        return None
    return DetectionLabels(boxes, classes, crowd, f"COCO JSON {path}", [names[c] for c in cats])
