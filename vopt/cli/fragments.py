"""Fragments (recipes/families/*.yaml, recipes/targets/*.yaml) are meant for `extends:` and are not recipes on
their own. To check one, compose it with a stub that fills what it leaves out (a name, and a model for a
target fragment)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import yaml

FRAGMENT_DIRS = ("families", "targets")
# The model a target fragment is checked with (random weights: builds offline).
STUB_MODEL = {"source": "hf", "id": "microsoft/resnet-50", "family": "resnet", "weights": "random"}


def is_fragment(path: Path) -> bool:
    return Path(path).resolve().parent.name in FRAGMENT_DIRS


def load_fragment(path: Path, sets: list[str] | None = None):
    """The fragment composed over a stub, so its keys are validated (errors keep the fragment's file:line)."""
    from vopt.recipe.load import load_raw
    from vopt.recipe.resolve import load_recipe

    path = Path(path).resolve()
    own = load_raw(path).data
    stub: dict = {"name": f"{path.stem}-fragment"}
    if "model" not in own or "source" not in (own.get("model") or {}):
        stub["model"] = STUB_MODEL
    with tempfile.TemporaryDirectory(prefix="vopt-fragment-") as tmp:
        stub_file = Path(tmp) / "stub.yaml"
        stub_file.write_text(yaml.safe_dump(stub))
        composed = Path(tmp) / "composed.yaml"
        composed.write_text(yaml.safe_dump({"extends": [str(stub_file), str(path)]}))
        return load_recipe(composed, sets)
