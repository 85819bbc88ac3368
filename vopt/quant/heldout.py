"""The held-out image sets of a build, decided when the recipe is planned (vopt.datasets.split): which images
calibration may use, which the quantize check measures on, and which validate measures on."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vopt.datasets.split import HeldOut, resolve
from vopt.quant.feeds import runs_as_pipeline


def calibrates_on_images(recipe: Any) -> bool:
    """Whether this recipe's quantize step calibrates on image files (not synthetic, not tensors, and not a
    scheme that needs no calibration, such as fp16 or weight-only compression: the scheme plugin says)."""
    from vopt.errors import RecipeError
    from vopt.quant.calibration import data_kind
    from vopt.quant.schemes import choose
    from vopt.registry import get_target

    q = recipe.quantize
    if q is None or q.precision in ("fp32", "bf16") or runs_as_pipeline(recipe):
        return False
    try:
        scheme, _ = choose(q, get_target(recipe.compile.target))
    except RecipeError:  # the plan names what is wrong with the scheme
        return False
    return bool(scheme.calibrates) and data_kind(q.calibration) == "images"


def for_quantize(q: Any, calibrates: bool) -> dict[str, Any]:
    """The QuantizeConfig fields: calibration candidates and check images (their paths go into the cache
    key)."""
    from vopt.quant.calibration import data_kind

    c = q.calibration
    h = resolve(
        c.data,
        calibrates and data_kind(c) == "images",
        q.check.data,
        q.check.holdout,
        q.check.allow_overlap,
        "quantize.check.data",
    )
    return {"heldout": _fields(h)}


def for_validate(recipe: Any) -> dict[str, Any] | None:
    """Validate's images: its own data, checked against calibration by content; or, with no data of its own or
    the calibration folder, the part of it held out from calibration."""
    v = recipe.validate_
    if v is None or not calibrates_on_images(recipe):
        return None
    c = recipe.quantize.calibration
    check_data = c.data if v.data is None else v.data
    h = resolve(c.data, True, check_data, recipe.quantize.check.holdout, v.allow_overlap, "validate.data")
    if v.data is None:
        h.how = "no validate.data: the calibration data's held-out part, " + h.how
    _exclude_chosen_on(recipe, h, v.allow_overlap)
    return _fields(h)


def _exclude_chosen_on(recipe: Any, h: HeldOut, allow_overlap: bool) -> None:
    """A quantize search or auto_fallback chooses its plan on the check's images, so validate leaves them out
    (by content hash): otherwise its figures would be measured on the images the plan was tuned for."""
    from vopt.datasets.split import content_hash

    q = recipe.quantize
    if q.search is None and not q.auto_fallback:
        return
    chosen_on = {content_hash(p) for p in check_files(q.check, for_quantize(q, True)["heldout"])}
    kept = [f for f in h.check if content_hash(f) not in chosen_on]
    if len(kept) == len(h.check):
        return
    tuned = "quantize.search" if q.search is not None else "quantize.auto_fallback"
    msg = (
        f"validate.data: {len(h.check) - len(kept)} of {len(h.check)} image(s) are the quantize check's, "
        f"which {tuned} chooses its plan on"
    )
    if allow_overlap or not kept:
        # No image left is a warning, not an error: small recipes (the built-in samples) would stop building.
        why = "allow_overlap: true" if allow_overlap else "no other held-out image"
        h.warnings.append(f"{msg} ({why}): validate's figures are optimistic")
        h.how += f"; IN-SAMPLE for {tuned}: {len(h.check) - len(kept)} of them the check's ({why})"
        return
    h.how += f"; less the {len(h.check) - len(kept)} the quantize check measures on ({tuned} tunes on them)"
    h.check = kept


def check_files(check: Any, heldout: dict[str, Any] | None) -> list[Path]:
    """The quantize check's images: `check.samples` of its held-out pool (or of `check.data`), in the check's
    seeded order. The check measures on these, and validate leaves them out after a search."""
    from vopt.datasets.images import list_images, sample_files
    from vopt.datasets.split import paths

    pool = paths(heldout, "check") or list_images(check.data)
    return sample_files(pool, check.samples, check.seed)


def _fields(h: HeldOut) -> dict[str, Any]:
    return {
        "calibration": None if h.calibration is None else [str(p) for p in h.calibration],
        "check": [str(p) for p in h.check],
        "how": h.how,
        "split": h.split,
        "warnings": h.warnings,
    }
