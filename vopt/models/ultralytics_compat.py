"""The one way vopt imports Ultralytics: offline, never installing anything, beside a CPU torch that has no
torchvision.

Ultralytics 8.4 is installed with `pip install --no-deps ultralytics` (its declared requirements pull PyPI's
torchvision, which is CUDA-linked and fails to import beside the CPU torch). A bare `import ultralytics` then
fails on its one metadata read, `importlib.metadata.version("torchvision")` (ultralytics/utils/__init__.py).
`import_ultralytics()` answers that one read, during the import only and only when no torchvision
distribution exists, with the release that pairs with the installed torch (0.28 for 2.13, which
`check_torchvision` expects). Nothing is installed or faked for anyone else: `import torchvision` still
fails, transformers' `is_torchvision_available()` stays False, and Ultralytics' NMS stays its own `TorchNMS`
(it takes torchvision's only when `"torchvision" in sys.modules`). Where a real torchvision is installed it
is read as usual.

The environment is set before the import, because Ultralytics reads it at import time (values already set
win): `YOLO_OFFLINE=1` (no DNS probe, no analytics events, no downloads), `YOLO_AUTOINSTALL=0` (its
`check_requirements` never runs pip), `YOLO_CONFIG_DIR` (its settings.json, inside vopt's cache instead of
~/.config), and `OMP_NUM_THREADS` is left as it was (Ultralytics would set it to 1 for every child process).
`PIL.Image.open`, which Ultralytics patches for the whole process at import (HEIF via pi-heif), is put back.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
import os
import sys
import types
from collections.abc import Iterator

EXTRA = "yolo"
INSTALL = "pip install 'vopt[yolo]' && pip install --no-deps 'ultralytics==8.4.*'"


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


def available() -> bool:
    return "ultralytics" in sys.modules or importlib.util.find_spec("ultralytics") is not None


def import_ultralytics() -> types.ModuleType:
    """`import ultralytics` with the environment above; a no-op after the first call. A missing Ultralytics
    is the one-line exit-4 error naming the extra."""
    if "ultralytics" in sys.modules:
        return sys.modules["ultralytics"]
    if importlib.util.find_spec("ultralytics") is None:
        from vopt.errors import BackendUnavailable

        raise BackendUnavailable(f"the yolo family needs Ultralytics: {INSTALL}")
    from vopt.core.cache import default_cache_dir

    env = {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "0",
        "YOLO_CONFIG_DIR": str(default_cache_dir() / "ultralytics"),
    }
    for key, value in env.items():
        os.environ.setdefault(key, value)
    threads = os.environ.get("OMP_NUM_THREADS")
    from PIL import Image

    pil_open = Image.open
    try:
        with _torchvision_version_answered():
            import ultralytics
    except ImportError as exc:  # one of its light requirements (cv2, polars, thop) is missing
        from vopt.errors import BackendUnavailable, first_line

        raise BackendUnavailable(f"Ultralytics cannot be imported ({first_line(exc)}): {INSTALL}") from None
    finally:
        if threads is None:
            os.environ.pop("OMP_NUM_THREADS", None)  # Ultralytics sets 1 for every child process
        # Ultralytics replaces PIL.Image.open for the whole process: on a file Pillow cannot identify, its
        # version calls check_requirements("pi-heif") and imports it, so an unreadable image in vopt's data
        # became "No module named 'pi_heif'" instead of the error naming the file. Pillow's own goes back.
        Image.open = pil_open
    return ultralytics
