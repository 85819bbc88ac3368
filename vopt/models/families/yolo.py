"""Ultralytics YOLO detectors (v8, 11, YOLO26 and the like), built and run through Ultralytics itself
(`vopt.models.ultralytics_compat`; the `yolo` extra).

Two heads:
- the anchor-free DFL head of v8/11 (`Detect`): one output `output0` of [B, 4 + nc, N]: per anchor a box
  (cx, cy, w, h in input pixels, decoded from the DFL distribution) and nc class scores (sigmoid). It needs
  NMS: `export.nms: true` puts ONNX NonMaxSuppression into the graph (vopt.models.nms).
- the NMS-free end-to-end head of YOLO26 / v10 (one-to-one branch): `output0` of [B, max_det, 6] (x1, y1,
  x2, y2, score, class), its top-k already in the graph. It needs no NMS, and `export.nms: true` on it is an
  error.

Preprocessing is Ultralytics': RGB, pixels / 255, no mean or std. Ultralytics letterboxes (resize keeping the
aspect ratio, pad with grey 114); vopt's contract resizes to the input size without padding (the same on
square images; on others the boxes are in the resized input's pixels, so x * W / w maps them back).

int8 keeps the head's own arithmetic in float: the DFL softmax and its conv, the box decode (anchors minus
and plus distances, times strides) and the concat with the class sigmoid, and the sigmoid itself. vopt runs
that tail in a named child of the head (`vopt_tail`), so its ONNX node names are `.../vopt_tail/...` and one
glob excludes it whatever the head's index in the model (`quant_exclude_nodes`); the NMS tail of
`export.nms` is a child named `postprocess` and stays float too. Weights are quantized per channel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vopt.models.families.base import Family

ZERO = [0.0, 0.0, 0.0]
ONE = [1.0, 1.0, 1.0]

# The last module of a model yaml's head, as Ultralytics' guess_model_task reads it, and the task it means.
HEAD_TASKS = (
    ("semanticsegment", "semantic segmentation"),
    ("segment", "segmentation"),
    ("pose", "pose"),
    ("obb", "oriented boxes (obb)"),
    ("depth", "depth"),
    ("classify", "classification"),
    ("detect", "detect"),
)
# The model classes a checkpoint pickles, by task (ultralytics.nn.tasks).
MODEL_CLASSES = {
    "DetectionModel": "detect",
    "SegmentationModel": "segmentation",
    "PoseModel": "pose",
    "OBBModel": "oriented boxes (obb)",
    "ClassificationModel": "classification",
    "RTDETRDetectionModel": "RT-DETR detection (use the rt_detr family through source: hf)",
    "WorldModel": "open-vocabulary (YOLO-World)",
    "YOLOEModel": "open-vocabulary (YOLOE)",
    "YOLOESegModel": "open-vocabulary segmentation (YOLOE)",
    "SemanticModel": "semantic segmentation",
    "DepthModel": "depth",
}


def yaml_task(cfg: dict[str, Any]) -> str | None:
    """The task of a model yaml (dict), from its head's last module, as Ultralytics guesses it."""
    try:
        last = str(cfg["head"][-1][-2]).lower()
    except (KeyError, IndexError, TypeError):
        return None
    if last in ("classify", "classifier", "cls", "fc"):
        return "classification"
    return next((task for key, task in HEAD_TASKS if key in last), None)


def yaml_end2end(cfg: dict[str, Any]) -> bool:
    """Whether a detect yaml builds the NMS-free one-to-one head (YOLO26's `end2end: True`, v10Detect)."""
    last = str((cfg.get("head") or [[None, None, None, None]])[-1][-2])
    return bool(cfg.get("end2end")) or last == "v10Detect"


class Yolo(Family):
    name = "yolo"
    model_types = ("yolo",)
    task = "object-detection"
    input_name = "images"
    outputs = ("output0",)
    image_size = 640
    mean = ZERO
    std = ONE
    channel_order = "RGB"
    # output0 holds boxes in input pixels (hundreds) beside scores: a float32 rounding of 1e-5 relative is
    # ~1e-2 px there (0.014 measured on the tiny model after Conv+BN folding); the cosine checks the rest.
    atol = 5e-2
    min_cosine = 0.9999
    quant_exclude_nodes = ("*/vopt_tail/*", "*/dfl/*", "*/postprocess/*")
    # NNCF: asymmetric activations, as Ultralytics' own OpenVINO int8 export (preset MIXED). SiLU outputs
    # reach about -0.28 and far more above 0: a symmetric range spends half its codes on values that never
    # occur. On the trained fixture (100 held-out images) the mAP50-95 drop went from 4.5 to 1.0 points and
    # box agreement from 0.973 to 0.989 (docs/yolo.md).
    nncf_preset = "mixed"
    # On QNN the decode runs on the HTP with 16-bit activations; the NMS tail runs on the CPU EP either way.
    quant_int16_nodes = ("*/vopt_tail/*", "*/dfl/*")
    # An end-to-end head's top-k rows can swap under a 1e-6 difference: parity matches them (on the anchor
    # head's [B, 4 + nc, N] the match is the identity).
    unordered_outputs = ("output0",)
    config_library = "ultralytics"
    # A tiny YOLO11 (yolo11n's layout at an eighth of its width and a third of its depth), 5 classes: what the
    # family's tests build (`model.config` overrides the yaml).
    tiny_config = {"nc": 5, "scales": {"n": [0.33, 0.125, 256]}}

    def tiny_model(self) -> dict[str, Any]:
        """The `model:` section of the tiny test model (random weights, 64 px)."""
        return {
            "source": "ultralytics",
            "id": "yolo11n.yaml",
            "family": self.name,
            "weights": "random",
            "config": dict(self.tiny_config),
            "input": {"shape": [1, 3, 64, 64], "name": "images"},
        }

    def prepare(self, model: Any) -> Any:
        """Inference mode of the head as `yolo export` sets it (one tensor out, not the training dict), the
        NMS-free branch where the model has one, and the decode in the named `vopt_tail` child."""
        head = detect_head(model)
        if head is None:
            return model
        head.export = True
        head.format = "onnx"
        head.dynamic = False
        head.shape = None
        if getattr(head, "one2one_cv2", None) is not None:
            head.end2end = True  # the one-to-one head: NMS-free, as Ultralytics' own exports default to
        if "vopt_tail" not in dict(head.named_children()):
            from vopt.models.families.yolo_head import Tail

            tail = Tail()
            object.__setattr__(tail, "head", head)  # not a child: no cycle in named_modules()
            head.add_module("vopt_tail", tail)
            head._inference = tail.inference
            head.postprocess = tail.postprocess
            self.applied.append("YOLO head in inference (export) mode; decode in a float-kept tail")
        return model

    def output_tensors(self, output: Any) -> tuple[Any, ...]:
        return (output[0] if isinstance(output, (tuple, list)) else output,)

    def check_nms(self, meta: dict[str, Any]) -> None:
        facts = meta.get("yolo") or {}
        if facts.get("end2end"):
            from vopt.errors import RecipeError

            raise RecipeError(
                f"export.nms: {meta.get('model_id') or 'the model'} has an NMS-free end-to-end head "
                f"({facts.get('head', 'one-to-one')}, output0 [B, {facts.get('max_det', 300)}, 6]): it needs "
                "no NMS; drop export.nms"
            )

    def check_recipe(self, recipe: Any) -> None:
        """An ONNX file given as a YOLO (source: onnx, family: yolo): its head must be one vopt reads, and
        export.nms must fit it."""
        if recipe.model.source != "onnx" or not recipe.model.path:
            return
        path = Path(recipe.model.path).expanduser()
        if path.is_file():
            check_onnx_head(path, nms=recipe.export.nms)

    def detections(self, outputs: dict[str, Any], score_threshold: float) -> list[Any] | None:
        """The raw head's detections, per image (boxes x1 y1 x2 y2 in input pixels, labels, scores): an
        end-to-end head's rows above the threshold, or the anchor head through Ultralytics' NMS at its default
        IoU (0.7)."""
        import numpy as np

        raw = outputs.get("output0")
        if raw is None or np.ndim(raw) != 3:
            return None
        raw = np.asarray(raw)
        if raw.shape[-1] == 6:  # [B, K, 6]: x1, y1, x2, y2, score, class
            kept = [r[r[:, 4] >= score_threshold] for r in raw]
            return [
                (r[:, :4].astype(np.float64), r[:, 5].astype(np.int64), r[:, 4].astype(np.float64))
                for r in kept
            ]
        from vopt.models.nms import reference

        cfg = {
            "max_detections": 300,
            "score_threshold": score_threshold,
            "iou_threshold": 0.7,
            "agnostic": False,
        }
        found = reference(raw, cfg)
        return [
            (b[:n].astype(np.float64), lab[:n], sc[:n].astype(np.float64))
            for b, sc, lab, n in zip(
                found["boxes"], found["scores"], found["labels"], found["num_detections"], strict=True
            )
        ]


def detect_head(model: Any) -> Any:
    """The model's Detect head (its last module), or None."""
    layers = getattr(model, "model", None)
    try:
        last = layers[-1]  # type: ignore[index]
    except (TypeError, IndexError, KeyError):
        return None
    return last if hasattr(last, "reg_max") and hasattr(last, "nc") else None


def head_facts(model: Any) -> dict[str, Any]:
    """What later steps need to know of the head (kept in the load artifact's metadata)."""
    head = detect_head(model)
    end2end = bool(getattr(head, "end2end", False))
    return {
        "head": type(head).__name__,
        "end2end": end2end,
        "nc": int(head.nc),
        "reg_max": int(head.reg_max),
        "max_det": int(getattr(head, "max_det", 300)),
        "strides": [int(s) for s in head.stride.tolist()],
        "output": "[B, max_det, 6] (x1, y1, x2, y2, score, class): NMS-free"
        if end2end
        else f"[B, 4 + {int(head.nc)}, anchors] (cx, cy, w, h, class scores): needs NMS",
    }


def build_detection_model(cfg: dict[str, Any], max_det: int = 300) -> Any:
    """A DetectionModel from a yaml dict (the architecture reference vopt's cache rebuilds; weights are then
    loaded over it). Ultralytics is imported the one way vopt does."""
    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    import torch
    from ultralytics.nn.tasks import DetectionModel

    with torch.random.fork_rng():  # its init draws random numbers: leave the caller's stream alone
        model = DetectionModel(cfg=dict(cfg), ch=int(cfg.get("channels", 3)), verbose=False)
    head = detect_head(model)
    if head is not None:
        head.max_det = max_det
    for p in model.parameters():
        p.requires_grad = False
    return model.eval()


def random_init(model: Any, size: list[int], seed: int = 0) -> Any:
    """Random weights whose outputs depend on the image and give detections: Ultralytics' own init gives
    near-constant outputs (BatchNorm statistics of an untrained net) and class scores of ~1e-4 (its prior
    bias), so every parity check would pass on nothing. Convolutions get Kaiming weights (the DFL's fixed
    arange conv is kept), BatchNorm statistics are recomputed on vopt's 18 sample photographs, and the last
    conv of each box and class branch is scaled to a set spread on those photographs: class logits centred at
    -4 with spread 0.7 (a few anchors over 0.25 on most photos, none saturating at 1.0, where tied scores
    would make NMS's choice arbitrary)."""
    import numpy as np
    import torch
    from torch import nn

    from vopt.core.artifact import Preprocess
    from vopt.datasets.images import load_batch

    torch.manual_seed(seed)
    head = detect_head(model)
    fixed = {id(m.conv) for m in model.modules() if type(m).__name__ == "DFL"}
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and id(m) not in fixed:
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.normal_(m.bias, std=0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.normal_(m.bias, std=0.1)
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the passes
    pre = Preprocess(size=list(size), mean=ZERO, std=ONE)
    photos = torch.from_numpy(np.ascontiguousarray(load_batch(None, pre, 18, seed=seed)))
    model.train()
    with torch.no_grad():
        model(photos)  # momentum None: the statistics of this pass
    model.eval()
    if head is None:
        return model
    lasts = [
        (branch, seq[-1])
        for branch in ("cv2", "cv3", "one2one_cv2", "one2one_cv3")
        for seq in (getattr(head, branch, None) or [])
    ]
    seen: dict[int, list[Any]] = {}
    hooks = [
        conv.register_forward_hook(lambda mod, i, o: seen.setdefault(id(mod), []).append(o.detach()))
        for _, conv in lasts
    ]
    with torch.no_grad():
        model(photos)
    for h in hooks:
        h.remove()
    with torch.no_grad():
        for branch, conv in lasts:
            o = torch.cat([t.transpose(0, 1).flatten(1) for t in seen[id(conv)]], 1)
            mean, std = o.mean(1), o.std(1).clamp(min=1e-6)
            if branch.endswith("cv3"):
                spread, centre = 0.7, -4.0
            elif head.reg_max == 1:  # distances regressed directly: positive, a few strides
                spread, centre = 0.5, 2.5
            else:
                spread, centre = 1.0, 0.0
            conv.weight.mul_((spread / std).view(-1, 1, 1, 1))
            conv.bias.copy_((conv.bias - mean) * spread / std + centre)
    return model


def bundled_yaml(name: str) -> Path | None:
    """A model yaml Ultralytics ships (`yolo11n.yaml` -> cfg/models/11/yolo11.yaml), found without
    importing Ultralytics; or `name` itself when it is a file."""
    import importlib.util
    import re

    path = Path(name).expanduser()
    if path.is_file():
        return path
    found = importlib.util.find_spec("ultralytics")
    roots = list(found.submodule_search_locations or []) if found else []
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", path.stem) + ".yaml"
    for root in roots:
        for candidate in (path.name, unified):
            hits = sorted((Path(root) / "cfg" / "models").rglob(candidate))
            if hits:
                return hits[0]
    return None


def read_yaml(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A model yaml as Ultralytics' yaml_model_load reads it (with its scale letter from the name), and the
    recipe's `model.config` on top. RecipeError naming the key when it cannot be found or read."""
    import re

    import yaml

    from vopt.errors import RecipeError, first_line

    path = bundled_yaml(name)
    if path is None:
        raise RecipeError(
            f"model.id: no model yaml '{name}': neither a file nor one that Ultralytics ships "
            "(e.g. yolo11n.yaml, yolov8s.yaml, yolo26n.yaml)"
        )
    try:
        cfg = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise RecipeError(f"model.id: {path}: unreadable yaml: {first_line(exc)}") from None
    if not isinstance(cfg, dict) or "head" not in cfg or "backbone" not in cfg:
        raise RecipeError(f"model.id: {path} is not an Ultralytics model yaml (no backbone/head)")
    scale = re.search(r"yolo(e-)?v?\d+([nslmx])", Path(name).stem)
    cfg["scale"] = scale.group(2) if scale else cfg.get("scale", "")
    cfg["yaml_file"] = Path(name).name
    for key, value in (overrides or {}).items():
        cfg[key] = (
            {**cfg[key], **value} if isinstance(cfg.get(key), dict) and isinstance(value, dict) else value
        )
    return cfg


def check_onnx_head(path: Path, *, nms: bool) -> None:
    """An ONNX file as a YOLO: RecipeError (model.path, naming the file and the op or shape) for NMS already
    in the graph, a head already decoded into detections when NMS is asked for, or an output that is no YOLO
    head."""
    import onnx

    from vopt.errors import RecipeError
    from vopt.models.nms import raw_head_shape

    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception:  # a corrupt file: the onnx source's own check says so
        return
    found = [n for n in proto.graph.node if n.op_type in ("NonMaxSuppression", "EfficientNMS_TRT")]
    if found:
        raise RecipeError(
            f"model.path: {path} already has NMS in its graph (op {found[0].op_type}, node "
            f"{found[0].name or '?'}): give the raw head (`yolo export format=onnx`, nms=False)"
            + ("; export.nms would add a second one" if nms else "")
        )
    name, dims = raw_head_shape(proto)
    if len(dims) == 3 and dims[-1] == 6:
        if nms:
            raise RecipeError(
                f"model.path: {path}: output {name} {dims} is already decoded into detections (x1, y1, "
                "x2, y2, score, class: an end-to-end head or an exported NMS): export.nms has nothing to "
                "suppress; drop it"
            )
        return
    if len(dims) != 3 or not isinstance(dims[1], int) or dims[1] < 5:
        raise RecipeError(
            f"model.path: {path}: output {name} has shape {dims}, not a YOLO detect head "
            "([B, 4 + classes, anchors] or [B, K, 6])"
        )
