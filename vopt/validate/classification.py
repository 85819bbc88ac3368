"""Classification agreement: does the artifact pick the same classes as the reference?"""

from __future__ import annotations

import numpy as np


def _as_2d(logits: np.ndarray) -> np.ndarray:
    a = np.asarray(logits, dtype=np.float64)
    return a.reshape(a.shape[0], -1)


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=1, keepdims=True))


def top1_agreement(ref: np.ndarray, out: np.ndarray) -> float:
    """Fraction of samples whose artifact top-1 class equals the reference top-1 class."""
    r, o = _as_2d(ref), _as_2d(out)
    return float(np.mean(r.argmax(axis=1) == o.argmax(axis=1))) if len(r) else 1.0


def topk_agreement(ref: np.ndarray, out: np.ndarray, k: int = 5) -> float:
    """Fraction of samples whose reference top-1 class is among the artifact's top-k classes."""
    r, o = _as_2d(ref), _as_2d(out)
    if not len(r):
        return 1.0
    k = min(k, o.shape[1])
    topk = np.argsort(-o, axis=1, kind="stable")[:, :k]
    return float(np.mean([t in row for t, row in zip(r.argmax(axis=1), topk, strict=True)]))


def kl_divergence(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean over samples of KL(softmax(ref) || softmax(out)), in nats; 0 when identical."""
    r, o = _as_2d(ref), _as_2d(out)
    if not len(r):
        return 0.0
    lp, lq = _log_softmax(r), _log_softmax(o)
    return float(np.mean(np.sum(np.exp(lp) * (lp - lq), axis=1)))


def has_top5(scores: np.ndarray) -> bool:
    """Top-5 says something only with more than five classes: with five or fewer every class is in it, and a
    top-5 of 100% would be reported for any artifact (a 4-class orientation classifier)."""
    return int(np.prod(np.shape(scores)[1:])) > 5


def classification_metrics(ref: np.ndarray, out: np.ndarray) -> dict[str, float]:
    m = {"top1_agreement": top1_agreement(ref, out)}
    if has_top5(ref):
        m["top5_agreement"] = topk_agreement(ref, out, 5)
    m["kl_divergence"] = kl_divergence(ref, out)
    return m
