"""scripts/yolo_shapes.py, the generator of the YOLO fixture's dataset: bit-identical from its seed, a prefix
of a split is the smaller split, and the YOLO labels and the COCO JSON describe the same boxes."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from tests.conftest import IMAGENET_SAMPLES, REPO

pytest.importorskip("skimage", reason="scripts/yolo_shapes.py uses scikit-image's photos (the dev extra)")
if len(list(IMAGENET_SAMPLES.glob("*.JPEG"))) < 100:
    pytest.skip(f"no ImageNet sample photos at {IMAGENET_SAMPLES}", allow_module_level=True)

_spec = importlib.util.spec_from_file_location("yolo_shapes", REPO / "scripts" / "yolo_shapes.py")
yolo_shapes = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("yolo_shapes", yolo_shapes)  # its dataclass looks its module up
_spec.loader.exec_module(yolo_shapes)


def test_a_split_is_the_same_bytes_from_its_seed_and_its_prefix_is_the_smaller_split(tmp_path):
    a = yolo_shapes.make_split(tmp_path / "a", "heldout", 6, seed=0)
    b = yolo_shapes.make_split(tmp_path / "b", "heldout", 6, seed=0)
    small = yolo_shapes.make_split(tmp_path / "small", "heldout", 3, seed=0)
    other = yolo_shapes.make_split(tmp_path / "other", "heldout", 3, seed=1)
    assert yolo_shapes.tree_sha256(tmp_path / "a") == yolo_shapes.tree_sha256(tmp_path / "b")
    for x, y in zip(a.images + a.labels, b.images + b.labels, strict=True):
        assert x.read_bytes() == y.read_bytes()
    for x, y in zip(small.images, a.images[:3], strict=True):
        assert x.read_bytes() == y.read_bytes()
    assert all(x.read_bytes() != y.read_bytes() for x, y in zip(other.images, small.images, strict=True))


def test_yolo_labels_and_the_coco_json_name_the_same_boxes(tmp_path):
    split = yolo_shapes.make_split(tmp_path, "val", 8, seed=0)
    coco = json.loads(split.coco_json.read_text())
    assert [c["name"] for c in coco["categories"]] == list(yolo_shapes.CLASSES)
    assert len(coco["annotations"]) == split.num_objects
    by_image: dict[int, list] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    for i, label in enumerate(split.labels):
        rows = np.loadtxt(label, ndmin=2)
        anns = by_image[i]
        assert 1 <= len(rows) == len(anns) <= 6
        for row, ann in zip(rows, anns, strict=True):
            cls, cx, cy, w, h = row
            x, y, bw, bh = (v / yolo_shapes.IMGSZ for v in ann["bbox"])
            assert int(cls) + 1 == ann["category_id"]
            assert np.allclose([cx, cy, w, h], [x + bw / 2, y + bh / 2, bw, bh], atol=1e-6)
            assert 0 < ann["area"] <= ann["bbox"][2] * ann["bbox"][3]
    yaml_text = (tmp_path / "shapes.yaml").read_text()
    assert "test: images/heldout" in yaml_text and "5: ring" in yaml_text
