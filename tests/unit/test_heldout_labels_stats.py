"""Held-out data, labels and honest rates: the pieces, on small real files (no model)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vopt.datasets.images import SAMPLES_DIR, list_images
from vopt.datasets.labels import find_labels
from vopt.datasets.split import resolve, split_by_hash
from vopt.errors import RecipeError
from vopt.validate.accuracy import label_metrics
from vopt.validate.confidence import failure_line, unresolved_aim
from vopt.validate.defaults import DEFAULT_GATES, gates_for
from vopt.validate.gates import evaluate
from vopt.validate.stats import needed_samples, paired_difference, wilson


def _img(path: Path, color: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (color, 0, 0)).save(path)
    return path


# -- labels ---------------------------------------------------------------------------------------
def test_imagefolder_labels_are_the_sorted_class_folders(tmp_path):
    for i, cls in enumerate(["zebra", "cat", "dog"]):
        _img(tmp_path / cls / f"a{i}.png", i)
        _img(tmp_path / cls / f"b{i}.png", 50 + i)
    files = list_images(str(tmp_path))
    labels = find_labels(str(tmp_path), files)
    assert labels is not None and "ImageFolder" in labels.source
    assert {f.parent.name: labels.by_file[f] for f in files} == {"cat": 0, "dog": 1, "zebra": 2}
    assert labels.classes == ["cat", "dog", "zebra"]


def test_imagefolder_with_a_class_list_takes_its_order(tmp_path):
    for i, cls in enumerate(["n02", "n01"]):
        _img(tmp_path / cls / "x.png", i)
    (tmp_path / "classes.txt").write_text("0\tn02\tsecond\n1\tn01\tfirst\n")
    files = list_images(str(tmp_path))
    labels = find_labels(str(tmp_path), files)
    assert {f.parent.name: labels.by_file[f] for f in files} == {"n02": 0, "n01": 1}


def test_synset_file_names_with_classes_txt(tmp_path):
    """The imagenet-samples layout: `<synset>_<name>.JPEG` + `index<TAB>synset<TAB>name`."""
    _img(tmp_path / "n01443537_goldfish.png", 1)
    _img(tmp_path / "n01491361_tiger_shark.png", 2)
    (tmp_path / "classes.txt").write_text(
        "0\tn01440764\ttench\n1\tn01443537\tgoldfish\n2\tn01484850\twhite_shark\n3\tn01491361\ttiger_shark\n"
    )
    files = list_images(str(tmp_path))
    labels = find_labels(str(tmp_path), files)
    assert [labels.by_file[f] for f in files] == [1, 3] and labels.name(3) == "tiger_shark"
    assert "synset prefix" in labels.source


def test_labels_file_maps_names_to_indices_or_class_names(tmp_path):
    a, b = _img(tmp_path / "img_a.png", 1), _img(tmp_path / "img_b.png", 2)
    (tmp_path / "labels.csv").write_text("file,label\nimg_a.png,7\nimg_b.png,4\n")
    labels = find_labels(str(tmp_path), [a, b])
    assert labels.of([a, b]) == [7, 4] and "labels file" in labels.source
    explicit = tmp_path / "other.tsv"
    explicit.write_text("img_a\tcat\nimg_b\tdog\n")
    (tmp_path / "classes.txt").write_text("dog\ncat\n")
    assert find_labels(str(tmp_path), [a, b], str(explicit)).of([a, b]) == [1, 0]
    assert find_labels(str(tmp_path), [a, b], "none") is None


def test_unlabelled_folder_has_no_labels():
    assert find_labels(str(SAMPLES_DIR), list_images(str(SAMPLES_DIR))) is None


# -- held out by construction ---------------------------------------------------------------------
def test_one_folder_splits_by_content_into_disjoint_parts(tmp_path):
    files = [_img(tmp_path / f"i{i:02d}.png", i * 7) for i in range(30)]
    calib, check = split_by_hash(files, 0.5)
    assert calib and check and not set(calib) & set(check) and len(calib) + len(check) == 30
    # content decides, not the name: a renamed copy lands in the same part
    copy = tmp_path / "renamed" / "zz.png"
    copy.parent.mkdir()
    shutil.copy(check[0], copy)
    assert split_by_hash([copy], 0.5)[1] == [copy]
    h = resolve(str(tmp_path), True, str(tmp_path), 0.3, False, "quantize.check.data")
    assert h.split["holdout"] == 0.3 and h.split["calibration"] + h.split["check"] == 31
    assert not {p.name for p in h.calibration} & {p.name for p in h.check}


def test_check_images_that_are_calibration_images_are_a_recipe_error(tmp_path):
    calib_dir, check_dir = tmp_path / "calib", tmp_path / "check"
    files = [_img(calib_dir / f"c{i}.png", i * 9) for i in range(6)]
    _img(check_dir / "new.png", 200)
    shutil.copy(files[2], check_dir / "copy_of_c2.png")
    with pytest.raises(
        RecipeError,
        match=r"quantize.check.data: 1 of 2 check image\(s\) are in the calibration data.*copy_of_c2",
    ):
        resolve(str(calib_dir), True, str(check_dir), 0.5, False, "quantize.check.data")
    h = resolve(str(calib_dir), True, str(check_dir), 0.5, True, "quantize.check.data")
    assert h.warnings and "allow_overlap" in h.warnings[0]


# -- honest rates ---------------------------------------------------------------------------------
def test_wilson_interval_numbers():
    lo, hi = wilson(99, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.9455, 0.9982)
    lo, hi = wilson(97, 100)
    assert (round(lo, 4), round(hi, 4)) == (0.9155, 0.9897)
    assert wilson(0, 0) == (0.0, 1.0) and wilson(10, 10)[1] == pytest.approx(1.0)
    # 0.99 vs 0.97 on 100 images: the intervals overlap, so 100 images cannot tell them apart
    assert wilson(97, 100)[1] > wilson(99, 100)[0]
    assert needed_samples(0.99) == 753 and needed_samples(0.9) == 62 and needed_samples(1.0) is None
    lo, hi = paired_difference(3, 1, 100)
    assert lo < 0.02 < hi


def test_gate_interval_straddles_warns_and_lower_bound_fails():
    metrics = {"top1_agreement": 0.99, "intervals": {"top1_agreement": {"n": 100, "ci95": [0.9455, 0.9982]}}}
    (g,) = evaluate({"top1_agreement": ">=0.98"}, metrics)
    assert g["passed"] and g["straddles"] and g["needs_images"] == needed_samples(0.98)
    (g,) = evaluate({"top1_agreement": ">=0.98"}, metrics, mode="lower_bound")
    assert not g["passed"] and g["bound"] == 0.9455
    (g,) = evaluate({"top1_agreement": ">=0.9"}, metrics, mode="lower_bound")
    assert g["passed"] and not g["straddles"] and "needs_images" not in g


def test_a_failed_gate_says_whether_its_images_could_decide_it():
    """The EfficientNet-Lite0 search case (measured): 149 of 150 check photos agree, gate >= 0.995."""
    metrics = {
        "top1_agreement": 149 / 150,
        "intervals": {"top1_agreement": {"n": 150, "ci95": list(wilson(149, 150))}},
    }
    (g,) = evaluate({"top1_agreement": ">=0.995"}, metrics)
    line = failure_line(g, "quantize")
    assert line.startswith("top1_agreement = 0.993333, needs >=0.995 (quantize); 95% interval 0.9632-0.9988")
    assert "(n=150): the interval straddles the threshold" in line
    assert line.endswith(f"this threshold needs about {needed_samples(0.995)} images to resolve")
    (g,) = evaluate({"top1_agreement": ">=0.98"}, metrics, mode="lower_bound")  # the estimate passes
    assert "failed on its bound 0.9632 (gate_mode lower_bound)" in failure_line(g, "validate")
    plain = {"metric": "sqnr_db", "value": 12.5, "condition": ">=60", "stage": "validate"}
    assert failure_line(plain) == "sqnr_db = 12.5, needs >=60 (validate)"  # no interval: nothing added
    # the search is warned before it starts: 150 images cannot steer it toward 0.995
    (g,) = evaluate({"top1_agreement": ">=0.995"}, metrics)
    note = unresolved_aim([plain | {"passed": False}, g], "quantize.search")
    assert note.startswith("quantize.search aims at top1_agreement >=0.995 on 150 check image(s)")
    assert f"takes about {needed_samples(0.995)}" in note and "centered_cosine" in note
    (g,) = evaluate({"top1_agreement": ">=0.9"}, metrics)  # passes, and 150 images resolve 0.9
    assert unresolved_aim([g], "quantize.search") is None


def test_label_metrics_drop_in_points():
    ref = np.eye(5)[[0, 1, 2, 3, 4, 0, 1, 2, 3, 4]]
    out = ref.copy()
    out[0] = np.eye(5)[1]  # the artifact loses image 0
    m, iv = label_metrics(ref, out, [0, 1, 2, 3, 4, 0, 1, 2, 3, 0])
    assert m["reference_top1_accuracy"] == 0.9 and m["top1_accuracy"] == 0.8 and m["top1_drop"] == 10.0
    assert iv["top1_drop"]["lost"] == 1 and iv["top1_drop"]["gained"] == 0 and iv["top1_accuracy"]["n"] == 10


def test_default_gates_per_task_and_recipe_overrides():
    gates, defaults = gates_for("image-classification", {"top1_agreement": ">=0.5"})
    # top1_drop and position_agreement are gated only where measured (labels; [B, T, C] outputs)
    assert gates == {
        "top1_agreement": ">=0.5",
        "centered_cosine": ">=0.9",
        "top1_drop": DEFAULT_GATES["image-classification"]["top1_drop"],
        "position_agreement": DEFAULT_GATES["image-classification"]["position_agreement"],
    }
    assert defaults == {"centered_cosine", "top1_drop", "position_agreement"}
    assert gates_for("object-detection", {})[0] == {"cosine": ">=0.95", "box_agreement": ">=0.8"}
    assert gates_for("image-classification", {}, random_weights=True)[0] == {"centered_cosine": ">=0.9"}
    assert gates_for("image-classification", {}, enabled=False) == ({}, set())
    # a default whose metric was not measured is skipped, a recipe gate is an error
    assert evaluate({"top1_agreement": ">=0.8"}, {"outputs": {}}, optional={"top1_agreement"}) == []
    with pytest.raises(RecipeError):
        evaluate({"top1_agreement": ">=0.8"}, {"outputs": {}})


# -- graph facts ----------------------------------------------------------------------------------
def _graph(ops: list[str], opset: int = 17) -> object:
    from onnx import TensorProto, helper

    nodes, prev = [], "x"
    for i, op in enumerate(ops):
        out = f"t{i}"
        if op == "MatMul":
            nodes.append(helper.make_node("MatMul", [prev, prev], [out]))
        elif op == "Softmax":
            nodes.append(helper.make_node("Softmax", [prev], [out], axis=-1))
        else:
            nodes.append(helper.make_node(op, [prev], [out]))
        prev = out
    g = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [4, 4])],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])


def test_attention_blocks_are_found_in_the_graph(tmp_path):
    import onnx

    from vopt.models.families.generic import generic_family
    from vopt.quant.attention import attention_blocks, with_transformer_defaults

    onnx.save(_graph(["MatMul", "Softmax", "Identity", "MatMul"]), tmp_path / "attn.onnx")
    onnx.save(_graph(["MatMul", "Relu", "Softmax"]), tmp_path / "cnn.onnx")
    assert attention_blocks(tmp_path / "attn.onnx") == 1 and attention_blocks(tmp_path / "cnn.onnx") == 0
    family = generic_family("image-classification")
    applied = with_transformer_defaults(family, tmp_path / "attn.onnx")
    assert (
        applied
        and family.is_transformer
        and {"Softmax", "LayerNormalization"} <= set(family.quant_exclude_ops)
    )
    assert not generic_family("image-classification").is_transformer  # the change is this instance's only


def test_opset_12_is_upgraded_for_qdq(tmp_path):
    import onnx

    from vopt.quant.opset import default_opset, upgrade_opset

    onnx.save(_graph(["Relu", "MatMul"], opset=12), tmp_path / "old.onnx")
    assert upgrade_opset(tmp_path / "old.onnx", tmp_path / "new.onnx") == (12, 13)
    assert default_opset(tmp_path / "new.onnx") == 13
    assert upgrade_opset(tmp_path / "new.onnx", tmp_path / "again.onnx") is None
