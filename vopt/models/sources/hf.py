"""Hugging Face transformers models: a Hub id or a local directory, pretrained or random weights."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from vopt.errors import BackendUnavailable, BuildError, RecipeError
from vopt.models.families.base import family_for, get_family
from vopt.models.sources.base import LoadedModel, Source

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


def _task_from_config(config: Any) -> str:
    for arch in getattr(config, "architectures", None) or []:
        for suffix, task in _ARCH_TASKS:
            if arch.endswith(suffix):
                return task
    return "image-classification"


class HfSource(Source):
    name = "hf"

    def load(self, spec) -> LoadedModel:
        import torch
        import transformers
        from transformers import AutoConfig

        if not spec.id:
            raise RecipeError("model.id: the hf source needs a Hub id or a local directory")
        random = spec.weights == "random"
        local = Path(spec.id).expanduser()
        try:
            if spec.family and random and not local.exists():
                # A random model needs only the architecture: build the family's config offline.
                config = self._family_config(spec)
            else:
                config = AutoConfig.from_pretrained(str(local) if local.exists() else spec.id, revision=spec.revision)
        except OSError as exc:
            raise self._offline_error(spec, exc) from None
        for key, value in spec.config.items():
            setattr(config, key, value)
        task = spec.task or _task_from_config(config)
        family = get_family(spec.family) if spec.family else family_for(config.model_type, task)
        if getattr(config, "num_labels", None) and "num_labels" in spec.config:
            config.num_labels = spec.config["num_labels"]
        auto_cls = getattr(transformers, AUTO_CLASSES[task])
        torch.manual_seed(spec.seed)
        try:
            if random:
                model = auto_cls.from_config(config, attn_implementation="eager")
            elif spec.weights == "pretrained":
                model = auto_cls.from_pretrained(
                    str(local) if local.exists() else spec.id, config=config, revision=spec.revision, attn_implementation="eager"
                )
            else:
                model = auto_cls.from_config(config, attn_implementation="eager")
                self._load_weights(model, Path(spec.weights))
        except OSError as exc:
            raise self._offline_error(spec, exc) from None
        except ValueError as exc:
            raise BuildError(f"transformers cannot build {task} model for '{spec.id}': {exc}", stage="load") from None
        model.eval()
        if random:
            from vopt.models.init import sane_random_init

            sane_random_init(model, spec.input.shape, seed=spec.seed)
        model = family.prepare(model)
        labels = spec.labels
        if labels is None and getattr(config, "id2label", None) and task == "image-classification":
            labels = [config.id2label[i] for i in sorted(config.id2label)]
        return LoadedModel(model, family, task, labels=labels, random_weights=random)

    def _family_config(self, spec) -> Any:
        from transformers import CONFIG_MAPPING, AutoConfig

        family = get_family(spec.family)
        model_type = family.model_types[0]
        if model_type not in CONFIG_MAPPING:
            raise RecipeError(f"model.family: transformers has no config for '{model_type}'")
        del AutoConfig
        return CONFIG_MAPPING[model_type]()

    def _load_weights(self, model: Any, path: Path) -> None:
        import torch

        if not path.exists():
            raise RecipeError(f"model.weights: checkpoint not found: {path}")
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise BuildError(f"checkpoint {path} does not match the model: {first}", stage="load") from None

    def _offline_error(self, spec, exc: Exception) -> BackendUnavailable:
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        return BackendUnavailable(
            f"cannot load Hugging Face model '{spec.id}'"
            f"{' (HF_HUB_OFFLINE=1)' if offline else ' (no network or no such repo)'}: "
            "download it once with `huggingface-cli download "
            f"{spec.id}` or point model.id at a local directory; or use `weights: random` with `family:` to build "
            "the architecture without weights"
        )
