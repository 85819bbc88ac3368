"""Input checks that run at plan time, before load, export or compile: data folders that exist and hold
readable images, gate metrics that the task measures, and an output directory that can be written.

Each problem is one line with the file:line (or `--set ...`) that set the value, exit 2."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vopt.errors import RecipeError

# Header reads per folder at plan time: enough to tell an image folder from one of something else,
# cheap enough for a folder of thousands (a header read opens the file and reads a few bytes).
HEADER_PROBES = 256

# Metrics every validation or quantize check measures, per output (vopt.validate.metrics.parity and
# vopt.validate.reference.compare_outputs), and those each task adds (vopt.validate.tasks.task_metrics).
PARITY_METRICS = ("max_abs_diff", "cosine", "sqnr_db", "centered_cosine", "input_variation")
# [B, T, C] per-position class scores, in any task that may have them (vopt.validate.sequence)
SEQUENCE_METRICS = ("position_agreement", "sequence_agreement", "character_error_rate")
TASK_METRICS: dict[str, tuple[str, ...]] = {
    # and, when the data has labels (vopt.validate.accuracy), accuracy and its drop in points
    "image-classification": (
        "top1_agreement",
        "top5_agreement",
        "kl_divergence",
        "top1_accuracy",
        "top5_accuracy",
        "top1_drop",
        "top5_drop",
        *SEQUENCE_METRICS,
    ),
    "object-detection": (
        "box_agreement",
        "box_recall",
        "box_precision",
        "box_mean_iou",
        "reference_detections",
        "artifact_detections",
        "matched_detections",
        "missing_detections",
        "extra_detections",
        "score_mean_abs_error",
        "score_max_abs_error",
        # mAP of the artifact's detections against the reference's (vopt.validate.detection_map), and with
        # labels (YOLO txt, COCO JSON) the real mAP of both and its drop in points
        "map50_95_vs_reference",
        "map50_vs_reference",
        "map50_95",
        "map50",
        "reference_map50_95",
        "reference_map50",
        "map50_95_drop",
        "map50_drop",
    ),
    "semantic-segmentation": ("miou", "pixel_agreement", "classes"),
    "feature-extraction": SEQUENCE_METRICS,
    # a pipeline's final images (vopt.validate.images)
    "text-to-image": ("psnr_db", "ssim", "latent_cosine", "tiled_psnr_db", "tiled_ssim"),
}


def check_inputs(loaded: Any) -> None:
    """Raise one RecipeError listing every input problem of the recipe (`loaded` is a LoadedRecipe)."""
    recipe, raw = loaded.recipe, loaded.raw
    problems: list[str] = []
    task = _task(recipe)
    problems += _model_file_problems(recipe.model, raw)
    problems += _model_type_problems(recipe.model, raw)
    if recipe.validate_ is not None:
        problems += _data_problems(recipe.validate_.data, ("validate", "data"), raw)
        problems += _labels_problems(recipe.validate_.labels, ("validate", "labels"), raw)
        problems += _gate_problems(recipe.validate_.gates, ("validate", "gates"), task, raw)
    q = recipe.quantize
    if q is not None and q.precision != "fp32":
        cal = q.calibration
        if not cal.synthetic:
            problems += _data_problems(cal.data, ("quantize", "calibration", "data"), raw, tensors_ok=True)
        problems += _data_problems(q.check.data, ("quantize", "check", "data"), raw)
        problems += _labels_problems(q.check.labels, ("quantize", "check", "labels"), raw)
        problems += _gate_problems(q.gates, ("quantize", "gates"), task, raw)
    if problems:
        n = len(problems)
        raise RecipeError(f"{n} problem{'s' if n != 1 else ''} with the recipe's inputs", lines=problems)


def _task(recipe: Any) -> str | None:
    """The model's task when the recipe says it (or names a family); None means 'known after load'."""
    if recipe.model.task:
        return recipe.model.task
    if recipe.model.family:
        from vopt.models.families.lookup import get_family

        return getattr(get_family(recipe.model.family), "task", None)
    return None


def known_metrics(task: str | None) -> list[str]:
    by_task = TASK_METRICS.get(task, ()) if task else tuple(m for ms in TASK_METRICS.values() for m in ms)
    return sorted({*PARITY_METRICS, *by_task})


def _gate_problems(gates: dict[str, str], loc: tuple[str, ...], task: str | None, raw: Any) -> list[str]:
    from vopt.suggest import did_you_mean

    known = known_metrics(task)
    out = []
    for metric in gates:
        # `logits.cosine` names one output: its metric part is checked (output names are known after export).
        name = metric.rpartition(".")[2] if metric not in known else metric
        if name not in known:
            what = f"the {task} task" if task else "any task"
            key = ".".join((*loc, metric))
            out.append(
                f"{raw.where((*loc, metric))}: {key}: no metric '{name}' is measured for {what}"
                f"{did_you_mean(name, known)}; known: {', '.join(known)}"
            )
    return out


def _data_problems(
    data: str | list[str] | None, loc: tuple[str, ...], raw: Any, *, tensors_ok: bool = False
) -> list[str]:
    if data is None:
        return []  # the built-in samples
    from vopt.datasets.images import BUILTIN, IMAGE_SUFFIXES, image_files

    key = ".".join(loc)
    sources = [data] if isinstance(data, str) else list(data)
    if not sources:
        return [f"{raw.where(loc)}: {key}: empty list; leave it out for the built-in samples"]
    out = []
    for i, src in enumerate(sources):
        where = raw.where((*loc, i) if isinstance(data, list) else loc)
        if src == BUILTIN:
            continue
        try:
            path = Path(src).expanduser()
            path.exists()
        except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, `~nosuchuser`
            out.append(f"{where}: {key}: not a usable path: {src!r} ({exc})")
            continue
        tensors = tensors_ok and path.suffix.lower() in (".npy", ".npz")
        if not path.exists():
            what = "tensor file not found" if tensors else "not found"
            out.append(
                f"{where}: {key}: {what}: {src} (relative paths are from the working directory, {Path.cwd()})"
            )
            continue
        kind = _special(path)
        if kind:  # a FIFO blocks the read, /dev/zero and /dev/urandom never end
            out.append(
                f"{where}: {key}: {src} is {kind}, not an image {'file' if tensors else 'file or folder'}"
            )
            continue
        if tensors:
            continue
        if path.is_file():
            from vopt.datasets.images import header_problem

            why = header_problem(path) if path.suffix.lower() in IMAGE_SUFFIXES else None
            if path.suffix.lower() not in IMAGE_SUFFIXES or why:
                detail = f" ({why})" if why and why.startswith("decompression bomb") else ""
                out.append(f"{where}: {key}: not a readable image (jpg, png, webp, bmp): {src}{detail}")
            continue
        try:
            files = image_files(path)
        except RecipeError as exc:
            out.append(f"{where}: {key}: {exc.message}")
            continue
        if not files:
            out.append(f"{where}: {key}: no images (jpg, png, webp, bmp) under {src}")
        elif not any(readable_image(f) for f in files[:HEADER_PROBES]):
            shown = min(len(files), HEADER_PROBES)
            out.append(
                f"{where}: {key}: none of the first {shown} image files under {src} can be read "
                f"(e.g. {files[0].name})"
            )
    return out


def _special(path: Path) -> str | None:
    """What a path that is neither a file nor a folder is ("a named pipe (FIFO)", ...); None otherwise."""
    from vopt.recipe.load import special_file_kind

    try:
        kind = special_file_kind(path.stat().st_mode)
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if kind == "a directory" else kind


def _model_file_problems(model: Any, raw: Any) -> list[str]:
    """A model file or checkpoint that is a FIFO or a device would block or never end at load. (A missing
    one is the source's to name: some resolve paths against the recipe's folder.)"""
    out = []
    for name in ("path", "weights"):
        value = getattr(model, name, None)
        if not value or (name == "weights" and value in ("pretrained", "random")):
            continue
        try:
            path = Path(value).expanduser()
            if not path.exists():
                continue
        except (OSError, ValueError, RuntimeError):
            continue
        kind = _special(path)
        if kind:
            out.append(f"{raw.where(('model', name))}: model.{name}: {value} is {kind}, not a model file")
    return out


def _model_type_problems(model: Any, raw: Any) -> list[str]:
    """The transformers model type the hf source builds offline (random weights or a local checkpoint):
    `model.config.model_type`, else the family's. One the installed transformers lacks stopped `vopt build`
    at load, after `vopt check` said ok. Read from transformers' source: check imports neither it nor
    torch."""
    if model.source != "hf" or model.weights == "pretrained" or (model.id and _is_dir(model.id)):
        return []  # transformers reads the config from the Hub or the folder: its model type is its own
    if "model_type" in model.config:
        loc, model_type, why = ("model", "config", "model_type"), model.config["model_type"], ""
    elif model.family:
        from vopt.models.families.lookup import get_family

        types = getattr(get_family(model.family), "model_types", ())
        if not types:
            return []
        loc, model_type, why = ("model", "family"), types[0], f" (family '{model.family}' builds it)"
    else:
        return []
    from vopt.models.hf_types import installed_model_types

    known = installed_model_types()
    if known is None or model_type in known:
        return []  # transformers missing, or its source unreadable: the build names it
    import importlib.metadata

    from vopt.suggest import did_you_mean

    version = importlib.metadata.version("transformers")
    return [
        f"{raw.where(loc)}: {'.'.join(loc)}: transformers {version} has no model type '{model_type}'{why}"
        f"{did_you_mean(str(model_type), sorted(known))}"
    ]


def _is_dir(path: str) -> bool:
    try:
        return Path(path).expanduser().exists()
    except (OSError, ValueError, RuntimeError):
        return False


def _labels_problems(labels: str | None, loc: tuple[str, ...], raw: Any) -> list[str]:
    """An explicit labels file must be a regular file (vopt.datasets.labels reads it whole)."""
    if labels is None or labels == "none":
        return []
    where, key = raw.where(loc), ".".join(loc)
    try:
        path = Path(labels).expanduser()
        if not path.exists():
            return [f"{where}: {key}: labels file not found: {labels}"]
    except (OSError, ValueError, RuntimeError) as exc:
        return [f"{where}: {key}: not a usable path: {labels!r} ({exc})"]
    kind = _special(path) or ("a directory" if path.is_dir() else None)
    return [f"{where}: {key}: {labels} is {kind}, not a labels file"] if kind else []


def readable_image(path: Path) -> bool:
    """Pillow can identify the file, and it is no decompression bomb (a header read: a truncated body is
    found, and skipped, at load)."""
    from vopt.datasets.images import header_problem

    return header_problem(path) is None


def check_out_dir(out_root: Path, names: list[str]) -> None:
    """`--out` must be a directory this process can write, found at the start and not after the build."""
    out_root = Path(out_root)
    problems = []
    if out_root.exists() and not out_root.is_dir():
        problems.append(f"--out {out_root}: is a file, not a directory")
    else:
        for name in names:
            target = out_root / name
            if target.exists() and not target.is_dir():
                problems.append(f"--out {out_root}: {target} is a file, not a build directory")
        probe = out_root
        while not probe.exists():
            probe = probe.parent
        if not probe.is_dir():
            problems.append(f"--out {out_root}: {probe} is a file, so {out_root} cannot be created")
        elif not _writable(probe):
            problems.append(f"--out {out_root}: {probe} is not writable")
    if problems:
        raise RecipeError(problems[0], lines=problems[1:])


def _writable(folder: Path) -> bool:
    """A real write, since os.access says yes to root on read-only mounts."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".vopt-write-probe-"):
            return True
    except OSError:
        return False
