"""A local model directory is keyed by every file in it: editing one file must change the cache key."""

from __future__ import annotations

import os
import time

from vopt.models.sources.base import Source
from vopt.recipe.sections.model import ModelSection


def test_local_directory_fingerprint_follows_files_inside(tmp_path):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    config = model_dir / "config.json"
    config.write_text('{"model_type": "resnet"}')
    (model_dir / "model.safetensors").write_bytes(b"x" * 10)
    spec = ModelSection(source="hf", id=str(model_dir), weights="pretrained")
    before = Source().fingerprint(spec)
    dir_mtime = os.stat(model_dir).st_mtime_ns
    time.sleep(0.01)
    config.write_text('{"model_type": "resnet", "num_labels": 3}')
    os.utime(model_dir, ns=(dir_mtime, dir_mtime))  # the directory itself looks untouched
    after = Source().fingerprint(spec)
    assert before["id"] != after["id"]
    assert Source().fingerprint(spec) == after  # stable when nothing changes
