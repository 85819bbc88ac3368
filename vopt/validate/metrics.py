"""Parity metrics between a reference output and an artifact's output."""

from __future__ import annotations

import numpy as np


def _flat(a: np.ndarray) -> np.ndarray:
    return np.asarray(a, dtype=np.float64).reshape(-1)


def max_abs_diff(ref: np.ndarray, out: np.ndarray) -> float:
    if not np.size(ref):
        return 0.0
    return float(np.max(np.abs(np.asarray(ref, np.float64) - np.asarray(out, np.float64))))


def cosine(ref: np.ndarray, out: np.ndarray) -> float:
    a, b = _flat(ref), _flat(out)
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(np.dot(a, b) / (na * nb))


def centered_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    """Cosine after subtracting the reference's mean output over the batch (axis 0).
    Raw cosine is inflated when outputs barely vary across inputs; this is not."""
    ref = np.asarray(ref, np.float64)
    out = np.asarray(out, np.float64)
    mean = ref.mean(axis=0, keepdims=True)
    return cosine(ref - mean, out - mean)


# Identical outputs have infinite SQNR; JSON has no Infinity (jq and CI tools reject it), so cap it.
SQNR_CAP_DB = 999.0


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio in dB, higher is better; +-999 dB stands for +-infinity."""
    ref = np.asarray(ref, np.float64)
    noise = np.sum((ref - np.asarray(out, np.float64)) ** 2)
    signal = np.sum(ref**2)
    if noise == 0:
        return SQNR_CAP_DB
    if signal == 0:
        return -SQNR_CAP_DB
    return float(np.clip(10 * np.log10(signal / noise), -SQNR_CAP_DB, SQNR_CAP_DB))


def parity(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    metrics = {
        "max_abs_diff": max_abs_diff(ref, out),
        "cosine": cosine(ref, out),
        "sqnr_db": sqnr_db(ref, out),
    }
    if np.ndim(ref) >= 1 and np.shape(ref)[0] > 1:
        metrics["centered_cosine"] = centered_cosine(ref, out)
    return metrics
