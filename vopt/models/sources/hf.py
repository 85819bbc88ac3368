"""Hugging Face transformers models: a Hub id or a local directory, pretrained or random weights."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from vopt.errors import BackendUnavailable, BuildError, RecipeError, first_line
from vopt.models.families.base import Family
from vopt.models.families.lookup import family_for, family_for_task, get_family
from vopt.models.sources.base import LoadedModel, Source, load_state_dict

AUTO_CLASSES = {
    "image-classification": "AutoModelForImageClassification",
    "object-detection": "AutoModelForObjectDetection",
    "semantic-segmentation": "AutoModelForSemanticSegmentation",
    "feature-extraction": "AutoModel",
}

# model_type -> task when the recipe does not say (architectures in the config decide otherwise).
_ARCH_TASKS = (
    ("ForImageClassification", "image-classification"),
    ("ForObjectDetection", "object-detection"),
    ("ForSemanticSegmentation", "semantic-segmentation"),
)


def _task_from_config(config: Any, family: Family | None) -> str:
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in _ARCH_TASKS:
            if arch.endswith(suffix):
                return task
    return family.task if family is not None else "image-classification"


def build_config(model_type: str, overrides: dict[str, Any]) -> Any:
    """A transformers config for `model_type` with overrides; nested dicts become nested configs."""
    from transformers import CONFIG_MAPPING

    if model_type not in CONFIG_MAPPING:
        raise RecipeError(
            f"model.config.model_type: transformers {_tf_version()} has no model type '{model_type}'"
        )
    try:
        return CONFIG_MAPPING[model_type](**overrides)
    except (TypeError, ValueError, KeyError) as exc:
        raise RecipeError(
            f"model.config: transformers rejects the overrides for '{model_type}': {exc}"
        ) from None


def apply_overrides(config: Any, overrides: dict[str, Any]) -> None:
    """Set config fields in place; a dict value updates a nested config (e.g. backbone_config)."""
    from transformers import PretrainedConfig

    for key, value in overrides.items():
        current = getattr(config, key, None)
        if isinstance(value, dict) and isinstance(current, PretrainedConfig):
            apply_overrides(current, value)
        else:
            setattr(config, key, value)


def _tf_version() -> str:
    import transformers

    return transformers.__version__


class HfSource(Source):
    name = "hf"

    def load(self, spec) -> LoadedModel:
        import torch
        import transformers

        if not spec.id:
            raise RecipeError("model.id: the hf source needs a Hub id or a local directory")
        random = spec.weights == "random"
        local = Path(spec.id).expanduser()
        where = str(local) if local.exists() else spec.id
        overrides = dict(spec.config)
        family: Family | None = get_family(spec.family) if spec.family else None
        if (
            spec.weights != "pretrained"
            and not local.exists()
            and (family is not None or "model_type" in overrides)
        ):
            # Random weights or a local checkpoint need only the architecture: build the config offline.
            model_type = overrides.pop("model_type", None) or family.model_types[0]  # type: ignore[union-attr]
            config = build_config(model_type, overrides)
        else:
            try:
                config = transformers.AutoConfig.from_pretrained(where, revision=spec.revision)
            except OSError:
                raise self._offline_error(spec) from None
            apply_overrides(config, {k: v for k, v in overrides.items() if k != "model_type"})
        if family is None:
            family = family_for(config.model_type, spec.task)
        config = family.adapt_config(config)
        task = spec.task or (family.task if family.name != "generic" else _task_from_config(config, None))
        if family.name == "generic":
            family = family_for(None, task)
            _preprocessor_defaults(family, local if local.exists() else None)
        else:
            family = family_for_task(family, task)
        model_cls = self._model_class(family, task)
        torch.manual_seed(spec.seed)
        try:
            if random:
                model = _from_config(model_cls, config)
            elif spec.weights == "pretrained":
                model = model_cls.from_pretrained(
                    where, config=config, revision=spec.revision, attn_implementation="eager"
                )
            else:
                model = _from_config(model_cls, config)
                self._load_weights(model, Path(spec.weights).expanduser())
        except OSError:
            raise self._offline_error(spec) from None
        except ValueError as exc:
            first = first_line(exc, limit=1000)
            raise BuildError(
                f"transformers cannot build a {task} model for '{spec.id}': {first}", stage="load"
            ) from None
        model.eval()
        if random:
            from vopt.models.init import sane_random_init

            sane_random_init(model, spec.input.shape, seed=spec.seed)
        model = family.prepare(model)
        labels = spec.labels
        id2label = getattr(config, "id2label", None)
        if (
            labels is None
            and id2label
            and task in ("image-classification", "object-detection", "semantic-segmentation")
        ):
            labels = [id2label[i] for i in sorted(id2label)]
        notes = [f"{config.model_type} -> family {family.name}, {model_cls.__name__}", *family.applied]
        reference = {
            "kind": "hf",
            "config": json.loads(model.config.to_json_string(use_diff=False)),
            "config_class": type(model.config).__name__,
            "class": model_cls.__name__,
            "family": family.name,
            "task": task,
        }
        return LoadedModel(
            model,
            family,
            task,
            labels=labels,
            random_weights=random,
            notes=notes,
            reference={"build": reference},
        )

    @staticmethod
    def _model_class(family: Family, task: str) -> Any:
        import transformers

        if family.model_class and task == family.task:
            return getattr(transformers, family.model_class)
        return getattr(transformers, AUTO_CLASSES[task])

    def _load_weights(self, model: Any, path: Path) -> None:
        state = load_state_dict(path)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise BuildError(
                f"checkpoint {path} does not match the model: {' '.join(first[:3])[:400]}", stage="load"
            ) from None

    def _offline_error(self, spec) -> BackendUnavailable:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        return BackendUnavailable(
            f"cannot load Hugging Face model '{spec.id}'"
            f"{' (HF_HUB_OFFLINE=1)' if offline else ' (no network or no such repo)'}: "
            "download it once with `huggingface-cli download "
            f"{spec.id}` or point model.id at a local directory; or use `weights: random` with `family:` "
            "(or `config: {model_type: ...}`) to build the architecture without weights"
        )


def _from_config(model_cls: Any, config: Any) -> Any:
    # Auto classes have from_config; concrete model classes only the private _from_config.
    build = getattr(model_cls, "from_config", None) or model_cls._from_config
    if getattr(config, "architectures", None) is None:
        config.architectures = []  # Auto classes with several candidates (DeiT) iterate over it
    return build(config, attn_implementation="eager")


def _preprocessor_defaults(family: Family, local: Path | None) -> None:
    """A generic-path model takes mean/std/size from its local preprocessor_config.json, when it has one."""
    if local is None or not (local / "preprocessor_config.json").is_file():
        return
    try:
        data = json.loads((local / "preprocessor_config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return
    # No mean/std in the processor config (e.g. MobileViT) means the model takes plain [0, 1] pixels.
    if data.get("do_normalize", "image_mean" in data) is False:
        family.mean, family.std = [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]  # type: ignore[misc]
    else:
        if isinstance(data.get("image_mean"), list):
            family.mean = data["image_mean"]  # type: ignore[misc]
        if isinstance(data.get("image_std"), list):
            family.std = data["image_std"]  # type: ignore[misc]
    if data.get("do_flip_channel_order"):
        family.channel_order = "BGR"  # type: ignore[misc]  (MobileViT)
    size = data.get("crop_size") or data.get("size")
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge")
    if isinstance(size, int):
        family.image_size = size  # type: ignore[misc]
