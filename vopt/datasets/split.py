"""Held out by construction: check and validation images are never calibration images.

Images are compared by content (sha256 of the file bytes), so a copy under another name is still caught.
When calibration and the check read the same folder, the folder is split deterministically by content hash:
an image whose hash falls below `holdout` goes to the check part, every other image to calibration. The split
depends on nothing but the bytes, so it is the same on every machine and for every recipe."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vopt.errors import RecipeError

_HASHES: dict[tuple[str, int, int], str] = {}


def content_hash(path: Path) -> str:
    """sha256 of the file's bytes (memoized by path, size and mtime)."""
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _HASHES:
        h = hashlib.sha256()
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        _HASHES[key] = h.hexdigest()
    return _HASHES[key]


def in_check_part(digest: str, holdout: float) -> bool:
    return int(digest[:13], 16) / 16**13 < holdout


def split_by_hash(files: list[Path], holdout: float) -> tuple[list[Path], list[Path]]:
    """(calibration part, check part): identical images always land in the same part."""
    calib, check = [], []
    for f in files:
        (check if in_check_part(content_hash(f), holdout) else calib).append(f)
    return calib, check


def same_source(a: str | list[str] | None, b: str | list[str] | None) -> bool:
    def norm(x: str | list[str] | None) -> list[str]:
        items = [x] if isinstance(x, str) or x is None else list(x)
        return sorted("builtin" if i is None else str(Path(i).expanduser().resolve()) for i in items)

    return norm(a) == norm(b)


def overlap(used: list[Path], others: list[Path]) -> list[tuple[Path, Path]]:
    """(calibration image, other image) pairs with identical content."""
    seen = {content_hash(f): f for f in used}
    return [(seen[h], f) for f in others if (h := content_hash(f)) in seen]


@dataclass
class HeldOut:
    """The images one stage may use, and how they were chosen (for the report and the manifest)."""

    calibration: list[Path] | None  # candidates calibration samples from; None: not image calibration
    check: list[Path]
    how: str
    split: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "split": self.split,
            "check_images": len(self.check),
            "calibration_images": None if self.calibration is None else len(self.calibration),
        }


def resolve(
    calib_data: str | list[str] | None,
    calib_images: bool,
    check_data: str | list[str] | None,
    holdout: float,
    allow_overlap: bool,
    key: str,
) -> HeldOut:
    """The calibration candidates and the check images for one quantize step (or validate: `key` says which
    recipe key the check data came from). `check_data` None means: the held-out part of the calibration
    data."""
    from vopt.datasets.images import list_images

    if not calib_images:  # synthetic or tensor calibration: no image can overlap
        return HeldOut(None, list_images(check_data), "calibration is not images: nothing to hold out")
    all_calib = list_images(calib_data)
    if check_data is None or same_source(calib_data, check_data):
        if allow_overlap:
            return HeldOut(
                all_calib,
                list_images(check_data if check_data is not None else calib_data),
                "IN-SAMPLE: the check reads the calibration images (allow_overlap: true)",
                warnings=[
                    f"{key}: the check measures on the calibration images (allow_overlap: true): "
                    "its numbers are optimistic"
                ],
            )
        calib, check = split_by_hash(all_calib, holdout)
        if not calib or not check:
            raise RecipeError(
                f"{key}: {len(all_calib)} image(s) cannot be split into calibration and check parts "
                f"(holdout {holdout}): give the check its own images, or more images"
            )
        split = {
            "by": "sha256 of the file content",
            "holdout": holdout,
            "calibration": len(calib),
            "check": len(check),
        }
        return HeldOut(
            calib,
            check,
            f"one folder split by content hash: {len(calib)} for calibration, "
            f"{len(check)} held out for the check (holdout {holdout})",
            split,
        )
    check = list_images(check_data)
    dup = overlap(all_calib, check)  # the whole calibration data, not only this seed's sample of it
    if dup:
        names = ", ".join(f"{o.name} = {c.name}" for c, o in dup[:4]) + (" ..." if len(dup) > 4 else "")
        msg = (
            f"{key}: {len({o for _, o in dup})} of {len(set(check))} check image(s) are in the calibration "
            "data "
            f"(same content): {names}"
        )
        if not allow_overlap:
            raise RecipeError(
                msg + "; use held-out images, or set allow_overlap: true to measure in-sample anyway"
            )
        return HeldOut(
            all_calib,
            check,
            "OVERLAPS calibration (allow_overlap: true)",
            warnings=[msg + " (allow_overlap: true)"],
        )
    return HeldOut(
        all_calib, check, "its own images, none of them calibration images (checked by content hash)"
    )


def manifest_list(files: list[Path], limit: int = 2000) -> list[dict[str, str]]:
    """Names and content hashes of the images a step used, for the manifest."""
    return [
        {"file": f.name, "sha256": content_hash(f)} for f in sorted(set(files), key=lambda p: p.name)[:limit]
    ]


def paths(heldout: dict | None, part: str) -> list[Path] | None:
    """The image paths of one part ('calibration' or 'check') of a step's recorded held-out sets."""
    if not heldout or heldout.get(part) is None:
        return None
    return [Path(p) for p in heldout[part]]
