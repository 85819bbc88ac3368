"""A decompression-bomb image in a data folder is named and skipped (or, given alone, refused at its recipe
line), never an internal error and never decoded: past Pillow's error limit (DecompressionBombError) and
between its warning and error limits (DecompressionBombWarning, where Pillow itself would decode it)."""

from __future__ import annotations

import shutil
import struct
import zlib
from pathlib import Path

import pytest

from vopt.core.artifact import Preprocess
from vopt.datasets.images import SAMPLES_DIR, ImageStats, image_files, iter_batches


def _png_header(path: Path, side: int) -> Path:
    """A PNG that says it is side x side RGB pixels; its body is a few KB (a bomb is only its header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = zlib.compress(b"\0" * (1 + 3 * side) * 4)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b""))
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for src in image_files(SAMPLES_DIR)[:10]:  # 10 photos and 2 bombs: under the 20% that may be skipped
        shutil.copy(src, folder / src.name)
    _png_header(folder / "a-error-bomb.png", 30_000)  # 900M pixels: over twice MAX_IMAGE_PIXELS
    _png_header(folder / "b-warning-bomb.png", 10_000)  # 100M pixels: Pillow would only warn, and decode it
    return folder


def test_bombs_are_skipped_by_name_and_counted(data):
    stats = ImageStats()
    files = image_files(data)
    batches = list(iter_batches(files, Preprocess(size=[32, 32]), batch=4, stats=stats))
    assert sum(len(b) for b in batches) == 10
    assert set(stats.skipped) == {"a-error-bomb.png", "b-warning-bomb.png"}
    assert stats.skipped["a-error-bomb.png"].startswith("decompression bomb: 900,000,000 pixels")
    assert stats.skipped["b-warning-bomb.png"].startswith("decompression bomb: 100,000,000 pixels")
    assert "skipped 2 unreadable images" in stats.warnings("validate")[0]


def _check(tmp_path: Path, data: str):
    import yaml

    from vopt.errors import RecipeError
    from vopt.pipeline.preflight import check_inputs
    from vopt.recipe.resolve import load_recipe

    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "name": "bomb",
                "model": {"source": "onnx", "path": str(tmp_path / "m.onnx")},
                "validate": {"data": data},
            }
        )
    )
    (tmp_path / "m.onnx").write_bytes(b"onnx")
    try:
        check_inputs(load_recipe(recipe, []))
    except RecipeError as exc:
        return "\n".join([exc.message, *exc.lines])
    return ""


def test_a_folder_whose_first_image_is_a_bomb_plans(tmp_path, data):
    """The plan-time probe of a folder's first images met the bomb first: `internal error:
    DecompressionBombError` (exit 1)."""
    problems = _check(tmp_path, str(data))
    assert "validate.data" not in problems  # the folder is usable: the bombs are skipped at load


def test_a_bomb_given_alone_is_a_recipe_error_naming_it(tmp_path, data):
    problems = _check(tmp_path, str(data / "a-error-bomb.png"))
    assert "validate.data: not a readable image" in problems
    assert "decompression bomb: 900,000,000 pixels, over Pillow's limit of 89,478,485" in problems
