"""`ultralytics`: an Ultralytics YOLO detector, built by Ultralytics itself (the `yolo` extra).

- `id: yolo11n.yaml` (a yaml Ultralytics ships, or a path), `weights: random` (seeded; vopt's sane random
  init, vopt.models.families.yolo.random_init) or a state_dict file (`weights: path.safetensors`); `config:`
  overrides yaml keys (`nc`, `scales`).
- `path: best.pt`: a training checkpoint. It is a pickle, so it loads only with `trust: true`, like every
  pickled checkpoint (unpickling runs code from the file). Before that, and without running anything, its
  pickle's class references are read (pickletools): a file that is not an Ultralytics checkpoint, or one of
  another task (segment, pose, obb, classify), is refused naming the file and the class.

The cache never holds the pickle: the load step stores the weights as safetensors plus a reference to vopt's
builder (`build_detection_model`) with the model's yaml as data, and rebuilds from that."""

from __future__ import annotations

import pickletools
import zipfile
from pathlib import Path
from typing import Any

from vopt.errors import BuildError, RecipeError, first_line
from vopt.models.sources.base import LoadedModel, Source

BUILDER = "vopt.models.families.yolo:build_detection_model"


class UltralyticsSource(Source):
    name = "ultralytics"
    requires = (("ultralytics", "yolo"),)
    builders = (BUILDER,)

    def trust_use(self, spec: Any) -> str | None:
        return (
            f"unpickling the Ultralytics checkpoint {spec.path} (it runs code from the file)"
            if spec.path
            else None
        )

    def fingerprint(self, spec: Any) -> dict[str, Any]:
        import importlib.metadata

        out = super().fingerprint(spec)
        try:
            out["ultralytics"] = importlib.metadata.version("ultralytics")
        except importlib.metadata.PackageNotFoundError:
            out["ultralytics"] = "absent"
        return out

    def check_recipe(self, recipe: Any) -> None:
        """Plan-time: the yaml or checkpoint is a YOLO detect model, the input fits its stride, and
        export.nms fits its head. Nothing is imported or unpickled."""
        spec = recipe.model
        if spec.family not in (None, "yolo"):
            raise RecipeError(
                f"model.family: the ultralytics source builds the yolo family, not '{spec.family}'"
            )
        shape = spec.input.shape
        for axis, size in (("height", shape[2]), ("width", shape[3])):
            if size % 32:
                raise RecipeError(
                    f"model.input.shape: {axis} {size} is not a multiple of 32, the YOLO's largest stride"
                )
        end2end = plan_facts(spec)["end2end"]
        if end2end and recipe.export.nms:
            raise RecipeError(
                f"export.nms: {spec.path or spec.id} has an NMS-free end-to-end head (output0 [B, 300, 6]): "
                "it needs no NMS; drop export.nms"
            )

    def plan_notes(self, recipe: Any) -> list[str]:
        facts = plan_facts(recipe.model)
        if facts["end2end"]:
            return [
                "head: NMS-free end-to-end (one-to-one) head: output0 [B, 300, 6] (x1, y1, x2, y2, score, "
                "class), top-k in the graph: no NMS needed"
            ]
        nms = "ONNX NonMaxSuppression in the graph (export.nms)" if recipe.export.nms else "none in the graph"
        return [f"head: anchor-free DFL head: output0 [B, 4 + classes, anchors]: needs NMS; NMS: {nms}"]

    def load(self, spec: Any) -> LoadedModel:
        from vopt.models.families.lookup import get_family
        from vopt.models.families.yolo import build_detection_model, head_facts, random_init, read_yaml

        family = get_family("yolo")
        notes: list[str] = []
        if spec.path:
            model = _load_checkpoint(spec)
            cfg = dict(model.yaml)
            names = getattr(model, "names", None)
            labels = [str(names[i]) for i in sorted(names)] if isinstance(names, dict) else spec.labels
            random = False
            notes.append(f"Ultralytics checkpoint {Path(spec.path).name} (trust: true)")
        else:
            if not spec.id:
                raise RecipeError(
                    "model.id: the ultralytics source needs a model yaml (id) or a checkpoint (path)"
                )
            if spec.weights == "pretrained":
                raise RecipeError(
                    f"model.weights: {spec.id} is an architecture, with no weights: use `weights: random`, a "
                    "state_dict file, or a checkpoint through model.path"
                )
            cfg = read_yaml(spec.id, spec.config)
            _check_task(cfg, f"model.id: {spec.id}")
            import torch

            torch.manual_seed(spec.seed)
            model = build_detection_model(cfg)
            random = spec.weights == "random"
            if random:
                random_init(model, list(spec.input.shape[2:]), seed=spec.seed)
            else:
                from vopt.models.sources.plain import load_weights

                load_weights(model, spec.weights)
                notes.append(f"weights from {spec.weights}")
            labels = spec.labels
            notes.append(f"{spec.id} ({cfg.get('scale') or 'no scale'})")
        cfg = _plain(cfg)
        model = family.prepare(model)
        model._vopt_positional = True
        facts = head_facts(model)
        n = sum(p.numel() for p in model.parameters())
        notes.append(f"{facts['head']} head, {facts['nc']} classes, {n / 1e6:.2f}M params: {facts['output']}")
        return LoadedModel(
            model.eval(),
            family,
            family.task,
            labels=labels,
            random_weights=random,
            notes=[*notes, *family.applied],
            reference={
                "build": {
                    "kind": "factory",
                    "arch": BUILDER,
                    "kwargs": {"cfg": cfg, "max_det": facts["max_det"]},
                    "family": family.name,
                    "task": family.task,
                }
            },
            meta={"yolo": facts},
        )


def _plain(value: Any) -> Any:
    """A yaml dict as JSON data (it goes into the cache's architecture reference)."""
    import json

    return json.loads(json.dumps(value, default=str))


def _check_task(cfg: dict[str, Any], where: str) -> None:
    from vopt.models.families.yolo import yaml_task

    task = yaml_task(cfg)
    if task != "detect":
        head = str((cfg.get("head") or [[None, None, "?"]])[-1][-2])
        raise RecipeError(
            f"{where} is a YOLO {task or 'unknown-task'} model (head {head}); the yolo family takes detect "
            "models (head Detect)"
        )


def plan_facts(spec: Any) -> dict[str, Any]:
    """What the recipe's model is, read without importing Ultralytics or unpickling: end2end or not. Raises
    RecipeError for a file that is no YOLO detect model."""
    from vopt.models.families.yolo import read_yaml, yaml_end2end

    if spec.path:
        found = scan_checkpoint(Path(spec.path).expanduser())
        return {"end2end": found["end2end"]}
    if not spec.id:
        raise RecipeError("model.id: the ultralytics source needs a model yaml (id) or a checkpoint (path)")
    cfg = read_yaml(spec.id, spec.config)
    _check_task(cfg, f"model.id: {spec.id}")
    return {"end2end": yaml_end2end(cfg)}


def scan_checkpoint(path: Path) -> dict[str, Any]:
    """The classes a torch checkpoint's pickle references and the strings it holds, read with pickletools
    (nothing is executed). RecipeError (model.path) for a missing file, a file that is not an Ultralytics
    checkpoint, or a model of another task."""
    from vopt.models.families.yolo import MODEL_CLASSES

    if not path.is_file():
        raise RecipeError(f"model.path: checkpoint not found: {path}")
    globals_, strings = _pickle_refs(path)
    models = [
        name
        for module, name in globals_
        if module.startswith("ultralytics.nn.tasks") and name in MODEL_CLASSES
    ]
    if not models:
        plumbing = ("collections", "builtins", "torch._utils", "torch.serialization", "_codecs", "numpy.core")
        named = sorted({f"{m}.{n}" for m, n in globals_ if not m.startswith(plumbing) and "Storage" not in n})
        foreign = [n for n in named if not n.startswith("torch.")] or named  # a model class before torch's
        what = f"its pickle names {', '.join(foreign[:3])}" if foreign else "it holds tensors only, no model"
        raise RecipeError(
            f"model.path: {path} is not an Ultralytics checkpoint ({what}); the ultralytics source takes a "
            "YOLO .pt saved by Ultralytics (other torch checkpoints: source: torch)"
        )
    task = MODEL_CLASSES[models[0]]
    if task != "detect":
        raise RecipeError(
            f"model.path: {path} is a YOLO {task} model ({models[0]}); the yolo family takes detect models "
            "(DetectionModel)"
        )
    heads = {n for m, n in globals_ if m.startswith("ultralytics.nn.modules")}
    return {"model_class": models[0], "end2end": "one2one_cv2" in strings or "v10Detect" in heads}


def _pickle_refs(path: Path) -> tuple[set[tuple[str, str]], set[str]]:
    """(module, name) of every GLOBAL / STACK_GLOBAL in the file's pickle, and its short strings."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                if member is None:
                    raise RecipeError(f"model.path: {path} is a zip without a torch pickle (data.pkl)")
                data = zf.read(member)
        else:
            data = path.read_bytes()
    except (OSError, zipfile.BadZipFile) as exc:
        raise RecipeError(f"model.path: {path}: unreadable: {first_line(exc)}") from None
    found: set[tuple[str, str]] = set()
    strings: set[str] = set()
    recent: list[str] = []
    memo: dict[int, Any] = {}
    last: Any = None
    try:
        for op, arg, _pos in pickletools.genops(data):
            name = op.name
            if name in (
                "SHORT_BINUNICODE",
                "BINUNICODE",
                "UNICODE",
                "BINUNICODE8",
                "SHORT_BINSTRING",
                "BINSTRING",
            ):
                last = arg
                recent.append(arg)
                if len(arg) < 200:
                    strings.add(arg)
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[arg] = last
            elif name == "MEMOIZE":
                memo[len(memo)] = last
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                last = memo.get(arg)
                if isinstance(last, str):
                    recent.append(last)
            elif name == "GLOBAL":
                module, _, attr = str(arg).partition(" ")
                found.add((module, attr))
                last = None
            elif name == "STACK_GLOBAL" and len(recent) >= 2:
                found.add((recent[-2], recent[-1]))
                last = None
            else:
                last = None
    except Exception as exc:  # a truncated or foreign file: what was read so far decides
        if not found:
            raise RecipeError(
                f"model.path: {path} is not a readable torch checkpoint: {first_line(exc)}"
            ) from None
    return found, strings


def _load_checkpoint(spec: Any) -> Any:
    """Ultralytics' own checkpoint loader, after the pickle scan and only with `trust: true`."""
    path = Path(spec.path).expanduser()
    scan_checkpoint(path)
    if not spec.trust:
        raise RecipeError(
            f"model.trust: {path} is a pickled checkpoint: it loads only with `trust: true` (unpickling runs "
            "code from the file)"
        )
    from vopt.models.ultralytics_compat import import_ultralytics

    import_ultralytics()
    from ultralytics.nn.tasks import load_checkpoint

    try:
        model, _ckpt = load_checkpoint(str(path))
    except Exception as exc:
        raise BuildError(
            f"cannot load Ultralytics checkpoint {path}: {first_line(exc)}", stage="load"
        ) from None
    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad = False
    return model
