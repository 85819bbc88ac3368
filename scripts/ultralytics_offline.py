"""Import Ultralytics 8.4 here: offline, never installing anything, beside torch 2.13 CPU and no torchvision.

- ``import ultralytics`` reads ``importlib.metadata.version("torchvision")`` once
  (``ultralytics/utils/__init__.py``) and raises ``PackageNotFoundError`` without a torchvision
  distribution. No torchvision works here (PyPI's is CUDA-linked: "operator torchvision::nms does not
  exist"), so ``import_ultralytics`` answers that one read, during the import only and only when no
  torchvision distribution exists, with the release that pairs with the installed torch (0.28 for 2.13, what
  ``ultralytics.utils.checks.check_torchvision`` expects). Nothing is installed or faked for anyone else:
  ``import torchvision`` still fails, transformers' ``is_torchvision_available()`` stays False (it asks
  ``importlib.util.find_spec``), and Ultralytics' NMS stays its own ``TorchNMS`` (it uses torchvision's only
  when ``"torchvision" in sys.modules``).
- ``YOLO_OFFLINE=1``: no DNS probe at import, no analytics events, no downloads. ``YOLO_AUTOINSTALL=0``: its
  ``check_requirements`` never runs pip (with network it would). ``YOLO_CONFIG_DIR``: where its settings.json
  is written at first import (default ``~/.config/Ultralytics``). Set before the import, as Ultralytics reads
  them at import time; values already in the environment win.

``unused_torchvision_imports_pass`` is for the training and evaluation *tools* only (scripts/, benchmarks/),
never for vopt itself: Ultralytics' ``BaseValidator.__init__`` (so ``val`` and ``train``) and
``AutoBackend.warmup`` (so ``predict`` of a non-end-to-end model) each run a bare ``import torchvision`` whose
module they never use (it only keeps import time out of their timings, or switches their NMS to
torchvision's); it lets those two statements find a placeholder module, for the duration of those two calls.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "YOLO_CONFIG_DIR": str(REPO / "build" / "ultralytics")}


def paired_torchvision_version(torch_version: str) -> str:
    """The torchvision release built for a torch release: 2.m pairs with 0.(m + 15), 1.m with 0.(m + 1)."""
    major, minor = (int(x) for x in torch_version.split("+")[0].split(".")[:2])
    return f"0.{minor + 15 if major == 2 else minor + 1}.0"


@contextlib.contextmanager
def _torchvision_version_answered() -> Iterator[None]:
    real = importlib.metadata.version
    import torch

    paired = paired_torchvision_version(torch.__version__)

    def version(name: str) -> str:
        try:
            return real(name)
        except importlib.metadata.PackageNotFoundError:
            if name == "torchvision":
                return paired
            raise

    importlib.metadata.version = version
    try:
        yield
    finally:
        importlib.metadata.version = real


def import_ultralytics() -> types.ModuleType:
    """``import ultralytics`` with the environment above; a no-op after the first call."""
    if "ultralytics" in sys.modules:
        return sys.modules["ultralytics"]
    for key, value in ENV.items():
        os.environ.setdefault(key, value)
    with _torchvision_version_answered():
        import ultralytics
    return ultralytics


@contextlib.contextmanager
def _torchvision_placeholder() -> Iterator[None]:
    """A module named torchvision with no attributes, in ``sys.modules`` for the block only."""
    if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is not None:
        yield  # a real torchvision is used as is
        return
    placeholder = types.ModuleType("torchvision", "placeholder: no torchvision is installed (scripts/ only)")
    sys.modules["torchvision"] = placeholder
    try:
        yield
    finally:
        if sys.modules.get("torchvision") is placeholder:
            del sys.modules["torchvision"]


@contextlib.contextmanager
def unused_torchvision_imports_pass() -> Iterator[None]:
    """Within the block, Ultralytics' two unused ``import torchvision`` statements on the train/val/predict
    paths pass: ``BaseValidator.__init__`` and ``AutoBackend.warmup`` each run under a placeholder module.

    Tools only (training, ``model.val``), never vopt: the placeholder has no attributes, so a real use of
    torchvision fails loudly, and it leaves ``sys.modules`` when the wrapped call returns, before Ultralytics'
    NMS asks whether torchvision is loaded (so NMS stays its own ``TorchNMS``). On CPU, ``warmup`` of a
    ``.pt`` model runs no forward and no NMS."""
    from ultralytics.engine.validator import BaseValidator
    from ultralytics.nn.autobackend import AutoBackend

    originals = {
        (BaseValidator, "__init__"): BaseValidator.__init__,
        (AutoBackend, "warmup"): AutoBackend.warmup,
    }

    def wrap(fn):
        def call(*args, **kwargs):
            with _torchvision_placeholder():
                return fn(*args, **kwargs)

        return call

    for (cls, name), fn in originals.items():
        setattr(cls, name, wrap(fn))
    try:
        yield
    finally:
        for (cls, name), fn in originals.items():
            setattr(cls, name, fn)
