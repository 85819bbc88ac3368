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


class StreamingParity:
    """parity() and input_variation() of one output, accumulated batch by batch in float64, so comparing
    a large output (a segmentation map, a feature map) over many images holds one batch of it, not all.

    Centered cosine needs the reference's mean over the whole set; it is expanded into sums that a pass can
    keep: with S_r, S_o the per-position sums over N images, sum((r - m)(o - m)) = sum(r o) - S_r.S_o / N,
    sum((r - m)^2) = sum(r^2) - S_r.S_r / N and sum((o - m)^2) = sum(o^2) - 2 S_r.S_o / N + S_r.S_r / N."""

    def __init__(self) -> None:
        self.n = 0
        self.ro = self.rr = self.oo = self.dd = 0.0
        self.max_abs = 0.0
        self.sum_r: np.ndarray | None = None
        self.sum_o: np.ndarray | None = None
        self.nonfinite = {"reference": 0, "artifact": 0}
        self.size = {"reference": 0, "artifact": 0}

    def add(self, ref: np.ndarray, out: np.ndarray) -> None:
        """One batch; taken a few images at a time, so the float64 copies stay small (16 MB each)."""
        ref, out = np.asarray(ref), np.asarray(out)
        per_image = max(1, int(np.prod(ref.shape[1:]))) if ref.ndim else 1
        step = max(1, (2 << 20) // per_image)
        if ref.ndim and len(ref) > step:
            for i in range(0, len(ref), step):
                self.add(ref[i : i + step], out[i : i + step])
            return
        r = np.asarray(ref, np.float64)
        o = np.asarray(out, np.float64)
        for side, arr in (("reference", r), ("artifact", o)):
            self.size[side] += arr.size
            self.nonfinite[side] += int(arr.size - np.count_nonzero(np.isfinite(arr)))
        if not r.size:
            return
        self.n += r.shape[0]
        self.ro += float(np.vdot(r, o))
        self.rr += float(np.vdot(r, r))
        self.oo += float(np.vdot(o, o))
        diff = r - o
        self.dd += float(np.vdot(diff, diff))
        self.max_abs = max(self.max_abs, float(np.max(np.abs(diff))))
        batch_r, batch_o = r.sum(axis=0), o.sum(axis=0)
        self.sum_r = batch_r if self.sum_r is None else self.sum_r + batch_r
        self.sum_o = batch_o if self.sum_o is None else self.sum_o + batch_o

    @staticmethod
    def _cos(dot: float, na2: float, nb2: float) -> float:
        if na2 <= 0 and nb2 <= 0:
            return 1.0
        if na2 <= 0 or nb2 <= 0:
            return 0.0
        return float(dot / np.sqrt(na2 * nb2))

    def metrics(self) -> dict[str, float]:
        """The same keys parity() gives, plus input_variation."""
        out = {
            "max_abs_diff": self.max_abs,
            "cosine": self._cos(self.ro, self.rr, self.oo),
            "sqnr_db": SQNR_CAP_DB
            if self.dd == 0
            else (
                -SQNR_CAP_DB
                if self.rr == 0
                else float(np.clip(10 * np.log10(self.rr / self.dd), -SQNR_CAP_DB, SQNR_CAP_DB))
            ),
        }
        if self.n > 1 and self.sum_r is not None and self.sum_o is not None:
            sr_so = float(np.vdot(self.sum_r, self.sum_o)) / self.n
            sr_sr = float(np.vdot(self.sum_r, self.sum_r)) / self.n
            centered = (self.ro - sr_so, self.rr - sr_sr, self.oo - 2 * sr_so + sr_sr)
            out["centered_cosine"] = self._cos(*centered)
            out["input_variation"] = float(np.sqrt(max(centered[1], 0.0) / self.rr)) if self.rr > 0 else 0.0
        else:
            out["input_variation"] = float("nan")
        return out
