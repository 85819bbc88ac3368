"""vopt metadata embedded in every artifact, so a deployed file says where it came from."""

from __future__ import annotations

import json
from typing import Any

import vopt


def artifact_metadata(artifact: Any, recipe_name: str, target: str, precision: str) -> dict[str, str]:
    meta = {
        "vopt.version": vopt.__version__,
        "vopt.recipe": recipe_name,
        "vopt.target": target,
        "vopt.precision": precision,
        "vopt.family": str(artifact.meta.get("family")),
        "vopt.task": str(artifact.meta.get("task")),
        "vopt.preprocess": json.dumps(artifact.preprocess.model_dump()),
        "vopt.random_weights": str(bool(artifact.meta.get("random_weights"))).lower(),
    }
    labels = artifact.meta.get("labels")
    if labels:
        meta["vopt.labels"] = json.dumps(labels)
    return meta


def set_onnx_metadata(proto: Any, meta: dict[str, str]) -> None:
    existing = {p.key: p for p in proto.metadata_props}
    for key, value in meta.items():
        if key in existing:
            existing[key].value = value
        else:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
