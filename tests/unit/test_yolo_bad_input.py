"""Bad YOLO inputs: each is one line naming the file, the key or the op, exit 2, before any model is built,
and nothing is left behind (no build directory, no cache entry). Checkpoints are read with pickletools only:
the crafted pickles here would fail loudly if anything unpickled them."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from vopt.models.ultralytics_compat import INSTALL, available

pytestmark = pytest.mark.skipif(not available(), reason=f"needs Ultralytics: {INSTALL}")


def _recipe(tmp_path: Path, model: dict, export: dict | None = None, target: str = "cpu") -> dict:
    return {
        "name": "bad-yolo",
        "model": {
            "source": "ultralytics",
            "id": "yolo11n.yaml",
            "weights": "random",
            "input": {"shape": [1, 3, 64, 64], "name": "images"},
            **model,
        },
        "export": export or {"nms": True},
        "compile": {"target": target},
        "validate": None,
    }


def _fails(cli, write_recipe, tmp_path: Path, recipe: dict, *needles: str) -> str:
    path = write_recipe(recipe)
    out = tmp_path / "out"
    res = cli("build", path, "--out", out)
    assert res.exit_code == 2, res.output
    lines = res.output.splitlines()
    errors = [i for i, ln in enumerate(lines) if ln.startswith("error")]
    assert len(errors) == 1, res.output
    # one error: its line, or (a recipe's schema problems) "1 problem in recipe" and that one problem's line
    line = lines[errors[0]]
    if line == "error: 1 problem in recipe":
        line = lines[errors[0] + 1].strip()
    for needle in needles:
        assert needle in line, (needle, line)
    assert not (out / recipe["name"]).exists()
    return line


def _no_cache_entries(cache: Path) -> None:
    assert not list(cache.rglob("entry.json")), sorted(cache.rglob("entry.json"))


def _torch_zip(path: Path, pickle_bytes: bytes) -> Path:
    """A file laid out as torch.save writes it (a zip holding <name>/data.pkl), around a crafted pickle."""
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{path.stem}/data.pkl", pickle_bytes)
        zf.writestr(f"{path.stem}/version", "3\n")
    return path


def _global_pickle(module: str, name: str) -> bytes:
    """A protocol-2 pickle that builds `module.name()`: GLOBAL, EMPTY_TUPLE, NEWOBJ, STOP."""
    return b"\x80\x02c" + module.encode() + b"\n" + name.encode() + b"\nq\x00)\x81q\x01."


def test_segment_yaml_given_to_the_detect_family(cli, write_recipe, tmp_path, _isolated_cache):
    line = _fails(
        cli,
        write_recipe,
        tmp_path,
        _recipe(tmp_path, {"id": "yolo11n-seg.yaml"}),
        "model.id",
        "yolo11n-seg.yaml",
    )
    assert "segmentation" in line and "Segment" in line
    _no_cache_entries(_isolated_cache)


@pytest.mark.parametrize(
    ("cls", "task"), [("PoseModel", "pose"), ("OBBModel", "obb"), ("ClassificationModel", "classification")]
)
def test_checkpoint_of_another_yolo_task(cls, task, cli, write_recipe, tmp_path, _isolated_cache):
    ckpt = _torch_zip(tmp_path / "other.pt", _global_pickle("ultralytics.nn.tasks", cls))
    recipe = _recipe(tmp_path, {"path": str(ckpt), "trust": True, "weights": "pretrained"})
    line = _fails(cli, write_recipe, tmp_path, recipe, "model.path", str(ckpt), cls)
    assert task in line
    _no_cache_entries(_isolated_cache)


def test_pt_from_another_framework(cli, write_recipe, tmp_path, _isolated_cache):
    ckpt = _torch_zip(tmp_path / "resnet.pt", _global_pickle("torchvision.models.resnet", "ResNet"))
    recipe = _recipe(tmp_path, {"path": str(ckpt), "trust": True, "weights": "pretrained"})
    line = _fails(
        cli, write_recipe, tmp_path, recipe, "model.path", str(ckpt), "not an Ultralytics checkpoint"
    )
    assert "torchvision.models.resnet.ResNet" in line and "source: torch" in line
    _no_cache_entries(_isolated_cache)


def test_a_plain_state_dict_is_no_ultralytics_checkpoint(cli, write_recipe, tmp_path, _isolated_cache):
    import torch

    ckpt = tmp_path / "weights.pt"
    torch.save(torch.nn.Linear(2, 2).state_dict(), ckpt)
    recipe = _recipe(tmp_path, {"path": str(ckpt), "trust": True, "weights": "pretrained"})
    _fails(cli, write_recipe, tmp_path, recipe, "model.path", "not an Ultralytics checkpoint", "tensors only")


def test_pickled_checkpoint_needs_trust(cli, write_recipe, tmp_path, _isolated_cache):
    ckpt = _torch_zip(tmp_path / "best.pt", _global_pickle("ultralytics.nn.tasks", "DetectionModel"))
    recipe = _recipe(tmp_path, {"path": str(ckpt), "weights": "pretrained"})
    _fails(cli, write_recipe, tmp_path, recipe, "model.trust", "trust: true", str(ckpt))
    _no_cache_entries(_isolated_cache)


def _onnx(path: Path, output_shape: list[int], with_nms: bool = False) -> Path:
    """A tiny ONNX file standing for a YOLO export: one output of `output_shape`, optionally an NMS node."""
    import onnx
    from onnx import TensorProto, helper

    nodes = [helper.make_node("ReduceMean", ["images"], ["pooled"], axes=[1], keepdims=0, name="pool")]
    nodes.append(
        helper.make_node(
            "ConstantOfShape",
            ["shape"],
            ["output0"],
            name="fill",
            value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0]),
        )
    )
    inits = [helper.make_tensor("shape", TensorProto.INT64, [len(output_shape)], output_shape)]
    if with_nms:
        nodes.append(
            helper.make_node("NonMaxSuppression", ["boxes", "scores"], ["selected"], name="/model/nms")
        )
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, output_shape)],
        inits,
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _onnx_recipe(path: Path, nms: bool) -> dict:
    return {
        "name": "bad-yolo",
        "model": {"source": "onnx", "path": str(path), "family": "yolo", "input": {"shape": [1, 3, 64, 64]}},
        "export": {"nms": nms},
        "compile": {"target": "cpu"},
        "validate": None,
    }


def test_onnx_with_nms_already_in_it(cli, write_recipe, tmp_path, _isolated_cache):
    path = _onnx(tmp_path / "yolo_nms.onnx", [1, 300, 6], with_nms=True)
    line = _fails(cli, write_recipe, tmp_path, _onnx_recipe(path, False), "model.path", str(path))
    assert "NonMaxSuppression" in line and "/model/nms" in line
    _no_cache_entries(_isolated_cache)


def test_onnx_with_the_head_already_decoded_and_nms_asked(cli, write_recipe, tmp_path, _isolated_cache):
    path = _onnx(tmp_path / "decoded.onnx", [1, 300, 6])
    line = _fails(cli, write_recipe, tmp_path, _onnx_recipe(path, True), "model.path", str(path))
    assert "already decoded" in line and "export.nms" in line
    _no_cache_entries(_isolated_cache)


def test_onnx_that_is_no_yolo_head(cli, write_recipe, tmp_path):
    path = _onnx(tmp_path / "classifier.onnx", [1, 1000])
    line = _fails(cli, write_recipe, tmp_path, _onnx_recipe(path, True), "model.path", str(path))
    assert "not a YOLO detect head" in line


def test_nms_on_a_head_that_needs_none(cli, write_recipe, tmp_path, _isolated_cache):
    recipe = _recipe(tmp_path, {"id": "yolo26n.yaml"})
    _fails(cli, write_recipe, tmp_path, recipe, "export.nms", "NMS-free end-to-end head", "yolo26n.yaml")
    _no_cache_entries(_isolated_cache)


def test_nms_on_a_target_that_cannot_run_it(cli, write_recipe, tmp_path):
    _fails(
        cli, write_recipe, tmp_path, _recipe(tmp_path, {}, target="tflite"), "export.nms", "NonMaxSuppression"
    )


@pytest.mark.parametrize(
    ("export", "key"),
    [
        ({"nms": True, "iou_threshold": 1.5}, "export.iou_threshold"),
        ({"nms": True, "iou_threshold": -0.1}, "export.iou_threshold"),
        ({"nms": True, "score_threshold": 1.01}, "export.score_threshold"),
        ({"nms": True, "score_threshold": -1}, "export.score_threshold"),
        ({"nms": True, "max_detections": 0}, "export.max_detections"),
        ({"nms": True, "max_detections": 10**9}, "export.max_detections"),
        ({"nms": True, "postprocess": True}, "export"),
    ],
)
def test_nms_settings_out_of_range(export, key, cli, write_recipe, tmp_path, _isolated_cache):
    _fails(cli, write_recipe, tmp_path, _recipe(tmp_path, {}, export), key, "recipe.yaml:")
    _no_cache_entries(_isolated_cache)


def test_nms_on_a_family_whose_head_takes_none(cli, write_recipe, tmp_path, _isolated_cache):
    from tests.conftest import tiny_model

    recipe = {"name": "bad-yolo", "model": tiny_model("resnet"), "export": {"nms": True}, "validate": None}
    line = _fails(cli, write_recipe, tmp_path, recipe, "export.nms", "resnet")
    assert "no head that NMS applies to" in line
    recipe["model"] = tiny_model("detr")
    line = _fails(cli, write_recipe, tmp_path, recipe, "export.nms", "detr", "export.postprocess")
    _no_cache_entries(_isolated_cache)
