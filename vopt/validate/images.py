"""Image metrics for pipelines that make pictures (text-to-image): PSNR and SSIM through scikit-image on the
final images, plus the cosine of the final latents, the tiled decode's PSNR when the check ran one."""

from __future__ import annotations

from typing import Any

import numpy as np

# What a text-to-image pipeline check measures (vopt.pipeline.preflight checks gate names against these).
METRICS = ("psnr_db", "ssim", "latent_cosine", "tiled_psnr_db", "tiled_ssim")


def psnr(ref: np.ndarray, out: np.ndarray) -> float:
    """PSNR in dB of one image in [0, 1]; identical images give inf (kept finite for JSON: 200 dB)."""
    from skimage.metrics import peak_signal_noise_ratio

    if np.array_equal(ref, out):
        return 200.0
    return float(min(peak_signal_noise_ratio(ref, out, data_range=1.0), 200.0))


def ssim(ref: np.ndarray, out: np.ndarray) -> float:
    """SSIM of one CHW image in [0, 1] (the window shrinks to fit a tiny image)."""
    from skimage.metrics import structural_similarity

    side = min(ref.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    return float(structural_similarity(ref, out, data_range=1.0, channel_axis=0, win_size=max(win, 3)))


def per_image(ref: np.ndarray, out: np.ndarray) -> tuple[list[float], list[float]]:
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    return [psnr(r, o) for r, o in zip(ref, out, strict=True)], [
        ssim(r, o) for r, o in zip(ref, out, strict=True)
    ]


def pipeline_metrics(ref: dict[str, np.ndarray], out: dict[str, np.ndarray]) -> dict[str, Any]:
    """The worst image's PSNR and SSIM (each image against the reference's image from the same prompt and
    seed), the latents' cosine, and the same for the tiled decode when there is one."""
    from vopt.validate.metrics import cosine

    m: dict[str, Any] = {}
    if "images" in ref and "images" in out:
        p, s = per_image(ref["images"], out["images"])
        m.update(psnr_db=min(p), ssim=min(s), psnr_db_per_image=p, ssim_per_image=s)
    if "latents" in ref and "latents" in out:
        m["latent_cosine"] = float(cosine(ref["latents"], out["latents"]))
    if "tiled_images" in ref and "tiled_images" in out:
        p, s = per_image(ref["tiled_images"], out["tiled_images"])
        m.update(tiled_psnr_db=min(p), tiled_ssim=min(s))
    return m
