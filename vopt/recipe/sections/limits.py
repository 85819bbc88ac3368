"""The ranges of every number in a recipe, in one place (docs/reliability-input.md lists them).

A value outside its range is a recipe error at load time, with file:line, before any work runs: a
`samples: 10**12` must not grow memory for minutes first. The maxima are far above any real build."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

MAX_SAMPLES = 100_000  # images read for calibration, validation, checks (each one is loaded and run)
MAX_BATCH = 4096
MAX_DIM = 16_384  # any one input dimension (batch, channels, height, width)
MAX_INPUT_ELEMENTS = 2**28  # N*C*H*W of the example input: 1 GiB of float32
MAX_THREADS = 1024
MAX_SECONDS = 86_400.0  # one day
MAX_ITERATIONS = 1_000_000
MAX_SEED = 2**32 - 1  # numpy and torch both take it
MAX_RESIZE = MAX_DIM
# Normalization, (pixel * scale - mean) / std. A pixel is 0..255; real contracts use scale 1 or 1/255,
# means of at most 255 (pixel units) or 1 (unit range) and stds from about 0.2 to 128. 10,000 and 1e-4 are
# far outside every real one and keep each normalized value finite in float32 (at most
# (255 * 1e4 + 1e4) / 1e-4, about 2.6e10): a mean of 1e308 made every input -inf and the outputs NaN.
MAX_NORM = 10_000.0  # |mean|, std and scale
MIN_STD = 1e-4
# vopt reads every image as 3-channel RGB (vopt.datasets.images.open_rgb): a mean or std has one value for all
# channels or one per channel; 2 or 4 values failed numpy's broadcast at export.
NORM_LENGTHS = (1, 3)
# Export parity loads all its samples as one batch and runs it through PyTorch and ONNX Runtime at once, so
# its memory grows with the count (100,000 grew past 2.5 GB); its images are the 18 built-in photos, so above
# 18 the samples are augmented crops of the same photos. Validation, not parity, measures on many images.
MAX_PARITY_SAMPLES = 64

# ONNX opsets torch.onnx can write (torch.onnx._constants; tests/unit/test_input_bounds.py checks these
# against the installed torch). Kept as constants so `vopt --help` and `vopt check` do not import torch.
OPSET_MIN = 7  # ONNX_MIN_OPSET
OPSET_MAX = 23  # ONNX_MAX_OPSET: the dynamo exporter (which raises anything below 18 to 18)
LEGACY_OPSET_MAX = 20  # ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET: the legacy (TorchScript) exporter

Samples = Annotated[int, Field(ge=1, le=MAX_SAMPLES)]
Batch = Annotated[int, Field(ge=1, le=MAX_BATCH)]
Threads = Annotated[int, Field(ge=1, le=MAX_THREADS)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Dim = Annotated[int, Field(ge=1, le=MAX_DIM)]
