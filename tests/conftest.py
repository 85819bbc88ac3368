"""Shared fixtures: an isolated cache, recipe writers and the CLI in process."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parent.parent
# The labelled ImageNet photos beside the checkout (../shared/data/imagenet-samples, as CI lays them out), or
# VOPT_IMAGENET_SAMPLES. Not part of the package: tests that need them skip with this path in the reason.
IMAGENET_SAMPLES = Path(
    os.environ.get("VOPT_IMAGENET_SAMPLES", REPO.parent / "shared" / "data" / "imagenet-samples")
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = tmp_path_factory.mktemp("cache")
    monkeypatch.setenv("VOPT_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def write_recipe(tmp_path: Path):
    """write_recipe({...}, name="r.yaml") -> path of a YAML recipe in tmp_path."""

    def _write(data: dict[str, Any], name: str = "recipe.yaml") -> Path:
        path = tmp_path / name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        return path

    return _write


def tiny_model(family: str, **overrides: Any) -> dict[str, Any]:
    """A `model:` section for a tiny random-weight variant of a registered family."""
    from vopt.models.families import get_family

    fam = get_family(family)
    own = fam.tiny_model()  # a family its own source builds (not transformers): its own section
    if own is not None:
        return {**own, **overrides}
    cfg = dict(fam.tiny_config)
    size = cfg.get("image_size", 64)
    if isinstance(size, (list, tuple)):
        size = size[0]
    model = {
        "source": "hf",
        "id": f"tiny-{family}",
        "family": family,
        "weights": "random",
        "config": cfg,
        "input": {"shape": [1, 3, int(size), int(size)]},
    }
    model.update(overrides)
    return model


@pytest.fixture
def cli():
    """Invoke the CLI in process: cli("build", "r.yaml", "--json") -> click Result."""
    from typer.testing import CliRunner

    from vopt.cli.app import make_app

    app = make_app()
    runner = CliRunner()

    def _invoke(*args: str):
        return runner.invoke(app, [str(a) for a in args], catch_exceptions=False)

    return _invoke
