"""Input errors found at plan time (data folders, gate metrics, --out), and images that load correctly or
are rejected by name: 16-bit PNGs, EXIF orientation, corrupt files, augmented repeats made visible."""

from __future__ import annotations

import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import tiny_model
from vopt.core.artifact import Preprocess
from vopt.datasets.images import SAMPLES_DIR, ImageStats, iter_batches, load_image
from vopt.errors import RecipeError


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def _recipe(**sections) -> dict:
    return {"name": "pre", "model": tiny_model("resnet"), "compile": {"target": "cpu"}, **sections}


def _stderr(res) -> str:
    return res.stderr if hasattr(res, "stderr") else res.output


def images_dir(tmp_path: Path, names=("coffee.jpg", "chelsea.jpg", "astronaut.jpg"), sub="imgs") -> Path:
    folder = tmp_path / sub
    folder.mkdir()
    for n in names:
        shutil.copy(SAMPLES_DIR / n, folder)
    return folder


# -- plan time: data folders and gate metrics
# --------------------------------------------------------------------
@pytest.mark.parametrize("where", ["validate", "calibration", "check"])
@pytest.mark.parametrize("kind", ["missing", "empty", "unreadable"])
def test_bad_data_folders_fail_check_with_the_line(write_recipe, cli, tmp_path, where, kind):
    folder = tmp_path / "data"
    if kind != "missing":
        folder.mkdir()
    if kind == "unreadable":
        (folder / "a.jpg").write_bytes(b"not a jpeg")
    recipe = _recipe(validate={"samples": 2})
    if where == "validate":
        recipe["validate"]["data"] = str(folder)
    else:
        recipe["quantize"] = {"precision": "int8", where: {"data": str(folder)}}
    path = write_recipe(recipe)
    res = cli("check", path)
    assert res.exit_code == 2, res.output
    key = {
        "validate": "validate.data",
        "calibration": "quantize.calibration.data",
        "check": "quantize.check.data",
    }[where]
    words = {"missing": "not found", "empty": "no images", "unreadable": "can be read"}[kind]
    line = next(ln for ln in res.output.splitlines() if key in ln)
    assert f"{path.name}:" in line and words in line, res.output


def test_unknown_gate_metric_for_the_task_fails_check_with_the_line(write_recipe, cli):
    path = write_recipe(_recipe(validate={"gates": {"box_agreement": ">=0.9", "logits.cosine": ">=0.9"}}))
    res = cli("check", path)
    assert res.exit_code == 2, res.output
    assert (
        "recipe.yaml:" in res.output
        and "validate.gates.box_agreement: no metric 'box_agreement'" in res.output
    )
    assert (
        "image-classification" in res.output and "logits.cosine" not in res.output
    )  # a per-output gate is fine


def test_bad_calibration_folder_fails_build_before_any_step(write_recipe, cli, tmp_path, _isolated_cache):
    path = write_recipe(
        _recipe(quantize={"precision": "int8", "calibration": {"data": str(tmp_path / "nope")}})
    )
    res = cli("build", path, "--out", tmp_path / "out")
    assert res.exit_code == 2, res.output
    assert "quantize.calibration.data: not found" in res.output and "recipe.yaml:" in res.output
    assert "load" not in res.output.split("error")[0]  # no stage ran
    assert not any(_isolated_cache.rglob("entry.json"))


def test_out_pointing_at_a_file_fails_at_the_start(write_recipe, cli, tmp_path, _isolated_cache):
    path = write_recipe(_recipe())
    (tmp_path / "out").write_text("I am a file")
    res = cli("build", path, "--out", tmp_path / "out")
    assert res.exit_code == 2 and "is a file, not a directory" in res.output, res.output
    res = cli("build", path, "--out", tmp_path / "out" / "sub")
    assert res.exit_code == 2 and "cannot be created" in res.output, res.output
    (tmp_path / "o2").mkdir()
    (tmp_path / "o2" / "pre").write_text("a file where the build directory goes")
    res = cli("build", path, "--out", tmp_path / "o2")
    assert res.exit_code == 2 and "is a file, not a build directory" in res.output, res.output
    assert not any(_isolated_cache.rglob("entry.json"))


def test_unwritable_out_fails_at_the_start(write_recipe, cli):
    path = write_recipe(_recipe())
    res = cli("build", path, "--out", "/proc/vopt-out")
    assert res.exit_code == 2 and "is not writable" in res.output, res.output


def test_error_messages_carry_no_terminal_escapes(tmp_path, cli):
    path = tmp_path / "r.yaml"
    path.write_text('name: t\nmodel: {source: hf, family: resnet, "\\e[31mred": 1}\n')
    res = cli("check", path)
    assert res.exit_code == 2 and "red" in res.output and "\x1b" not in res.output, repr(res.output)
    from vopt.cli.output import plain

    assert plain("\x1b[1;31mFAIL\x1b[m: x\x07") == "FAIL: x\\x07"


# -- images
# -------------------------------------------------------------------------------------------------------
def _png16(path: Path, arr: np.ndarray) -> None:
    """A 16-bit PNG written by hand (Pillow writes only 16-bit grayscale, imageio no 16-bit RGB)."""
    h, w = arr.shape[:2]
    ctype = {2: 0, 3: 2}[arr.ndim]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


PLAIN = Preprocess(
    size=[32, 32], resize=None, mean=[0, 0, 0], std=[1, 1, 1], scale=1.0, channel_order="RGB", layout="NHWC"
)


@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_png_is_scaled_to_8bit(tmp_path, channels):
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    arr = ramp if channels == 1 else np.stack([ramp, ramp, ramp], -1)
    _png16(tmp_path / "x.png", arr)
    got = load_image(tmp_path / "x.png", PLAIN)[..., 0]
    expected = ramp.astype(np.float64) / 257
    assert np.abs(got - expected).max() <= 1.0  # was 99% white (255) for grayscale
    assert (got >= 254.5).mean() < 0.01


def test_exif_orientation_is_applied(tmp_path):
    from PIL import Image

    img = Image.new("RGB", (64, 32), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 32, 32))  # white left half, stored unrotated
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img.save(tmp_path / "plain.jpg", quality=95)
    pre = PLAIN.model_copy(update={"size": [64, 32]})  # [height, width] of the upright (portrait) photo
    rotated = load_image(tmp_path / "rot.jpg", pre).mean(axis=-1)
    plain = load_image(tmp_path / "plain.jpg", pre).mean(axis=-1)
    assert not np.allclose(rotated, plain, atol=20)
    assert rotated[:32].mean() > 200 and rotated[32:].mean() < 50  # white on top after a 90-degree turn


def _corrupt(path: Path) -> None:
    data = (SAMPLES_DIR / "coffee.jpg").read_bytes()
    path.write_bytes(data[: len(data) // 3])  # a truncated download


def test_a_corrupt_jpeg_among_good_ones_is_skipped_and_named(tmp_path):
    folder = images_dir(
        tmp_path, names=("coffee.jpg", "chelsea.jpg", "astronaut.jpg", "colorwheel.jpg", "camera.png")
    )
    _corrupt(folder / "broken.jpg")
    files = sorted(folder.iterdir())
    stats = ImageStats()
    batches = list(iter_batches(files, PLAIN, batch=4, stats=stats))
    assert sum(len(b) for b in batches) == 5
    assert (stats.distinct, stats.augmented, stats.samples) == (5, 0, 5)
    good = [f for f in files if f.name != "broken.jpg"]
    list(iter_batches(files + good[:2], PLAIN, batch=4, stats=stats))  # a second pass, two repeats
    assert (stats.distinct, stats.augmented, stats.samples) == (5, 2, 7)
    assert list(stats.skipped) == ["broken.jpg"]
    (warning,) = [w for w in stats.warnings("validate") if "skipped" in w]
    assert "broken.jpg" in warning and "1 unreadable image" in warning


def test_too_many_corrupt_images_fail_naming_them(tmp_path):
    folder = images_dir(tmp_path, names=("coffee.jpg", "chelsea.jpg"))
    _corrupt(folder / "b1.jpg")
    _corrupt(folder / "b2.jpg")
    with pytest.raises(RecipeError, match=r"2 of 4 image files cannot be read.*b1.jpg.*b2.jpg"):
        list(iter_batches(sorted(folder.iterdir()), PLAIN, batch=2))


@pytest.mark.slow  # a full build
def test_validation_report_counts_distinct_images_and_augmented_crops(write_recipe, cli, tmp_path):
    folder = images_dir(tmp_path)
    _corrupt(folder / "zz-broken.jpg")
    path = write_recipe(_recipe(validate={"data": str(folder), "samples": 8}))
    res = cli("build", path, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    v = json.loads(res.stdout)["validation"]
    assert v["distinct_images"] == 3 and v["skipped_images"].keys() == {"zz-broken.jpg"}
    assert (
        v["augmented_crops"] == 3 and v["samples"] == 6
    )  # 8 picks of 4 files; the 2 of the broken one dropped
    out = _stderr(res)
    assert "augmented crops" in out and "zz-broken.jpg" in out
