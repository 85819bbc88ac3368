"""Reference outputs from PyTorch, and comparison of an artifact against them."""

from __future__ import annotations

from typing import Any

import numpy as np

from vopt.validate.metrics import parity


def torch_outputs(model: Any, family: Any, images: np.ndarray, batch: int = 8) -> dict[str, np.ndarray]:
    import torch

    from vopt.models.resolve import OutputWrapper

    wrapped = OutputWrapper.wrap(model, family)
    collected: dict[str, list[np.ndarray]] = {}
    with torch.no_grad():
        for i in range(0, len(images), batch):
            outs = wrapped(torch.from_numpy(images[i : i + batch]))
            for name, t in zip(family.outputs, outs, strict=True):
                collected.setdefault(name, []).append(t.detach().float().numpy())
    return {k: np.concatenate(v) for k, v in collected.items()}


def compare_outputs(
    ref: dict[str, np.ndarray],
    out: dict[str, np.ndarray],
    skip: tuple[str, ...] = (),
    where: str = "parity",
) -> dict[str, Any]:
    """Per-output parity. Outputs in `skip` are per-query detection outputs whose order is not stable (top-k):
    they are compared as matched detections (each reference query paired with its nearest artifact query).

    Raises GateFailed (exit 3) when no output could be compared: an empty comparison has no metric, so every
    gate on it would be skipped or misread, and `cosine 1.000000` would be printed for nothing."""
    require_compared(ref, out, where)
    require_finite(ref, out, where)
    out, moved = align_queries(ref, out, skip)
    outputs = {}
    for name, r in ref.items():
        if name not in out or not np.size(r):
            continue
        m = parity(r, out[name])
        m["input_variation"] = input_variation(r)
        if name in skip and name in moved:
            m["matched"] = True
            m["reordered_queries"] = moved[name]
            m["note"] = "queries matched one-to-one by nearest (scores, boxes): top-k order is not stable"
        outputs[name] = m
    checked = list(outputs.values())
    return {
        "outputs": outputs,
        "worst_cosine": min((m["cosine"] for m in checked), default=1.0),
        "worst_max_abs_diff": max((m["max_abs_diff"] for m in checked), default=0.0),
    }


def require_finite(ref: dict[str, np.ndarray], out: dict[str, np.ndarray], where: str) -> None:
    """Fail, with its own message, when an output holds NaN or inf: a cosine of NaN compares false with every
    threshold, so a NaN-producing artifact passed parity (and any check not gated) with exit 0."""
    bad = []
    for side, outputs in (("reference", ref), ("artifact", out)):
        for name, value in outputs.items():
            arr = np.asarray(value)
            if arr.dtype.kind not in "fc" or not arr.size:
                continue
            count = int(arr.size - np.count_nonzero(np.isfinite(arr)))
            if count:
                bad.append(f"{side} output {name}: {count} of {arr.size} values are NaN or inf")
    if bad:
        not_finite(bad, where)


def not_finite(bad: list[str], where: str) -> None:
    """Raise the check's failure for outputs with NaN or inf; `bad` says, per side and output, how many."""
    from vopt.errors import GateFailed

    both = any(b.startswith("reference") for b in bad) and any(b.startswith("artifact") for b in bad)
    hint = (
        "the reference overflows too: the inputs or the weights do (preprocess.mean / std, or the checkpoint)"
        if both or all(b.startswith("reference") for b in bad)
        else "only the artifact's: the conversion broke the model (precision, an op the runtime computes "
        "differently)"
    )
    raise GateFailed(
        f"{where}: outputs are not finite (NaN or inf), so they cannot match the reference",
        lines=[*bad[:6], hint],
        failures=[
            {
                "metric": "outputs_finite",
                "value": 0,
                "condition": ">=1",
                "threshold": 1,
                "passed": False,
                "stage": where.split()[0],
            }
        ],
    )


def require_compared(ref: dict[str, np.ndarray], out: dict[str, np.ndarray], where: str) -> None:
    """Fail, with its own message, when the two sides share no output with rows in it (a static batch read as
    -1 ran no batch; outputs renamed between the reference and the artifact; an empty image set)."""
    shared = [n for n in ref if n in out and np.size(ref[n]) and np.size(out[n])]
    if shared:
        return
    from vopt.errors import GateFailed

    def sides(d: dict[str, np.ndarray]) -> str:
        return ", ".join(f"{n} {list(np.shape(v))}" for n, v in d.items()) or "no outputs"

    raise GateFailed(
        f"{where} compared nothing: no output of the artifact could be compared with the reference",
        lines=[
            f"reference: {sides(ref)}",
            f"artifact: {sides(out)}",
            "nothing was measured, so no gate can pass; an artifact that ran no batch or renamed its outputs "
            "is not a passing artifact",
        ],
        failures=[
            {
                "metric": "outputs_compared",
                "value": 0,
                "condition": ">=1",
                "threshold": 1,
                "passed": False,
                "stage": where.split()[0],
            }
        ],
    )


def input_variation(ref: np.ndarray) -> float:
    """How much an output depends on the input: norm of (output - batch mean) over norm of output.
    Near 0 means every image gives the same output, and a parity check on it proves nothing."""
    r = np.asarray(ref, np.float64)
    if r.ndim == 0 or r.shape[0] < 2:
        return float("nan")
    norm = np.linalg.norm(r)
    return float(np.linalg.norm(r - r.mean(axis=0, keepdims=True)) / norm) if norm > 0 else 0.0


def align_queries(
    ref: dict[str, np.ndarray], out: dict[str, np.ndarray], names: tuple[str, ...]
) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Reorder the artifact's queries ([batch, queries, ...] outputs) to pair one-to-one with the reference's.
    All `names` share the query axis, so they are matched jointly (e.g. class logits with boxes)."""
    group = [
        n
        for n in names
        if n in ref and n in out and np.ndim(ref[n]) >= 2 and np.shape(ref[n]) == np.shape(out[n])
    ]
    if not group or len({np.shape(ref[n])[:2] for n in group}) != 1:
        return out, {}
    batch, queries = np.shape(ref[group[0]])[:2]
    scales = {n: float(np.std(ref[n])) or 1.0 for n in group}

    def feats(src: dict[str, np.ndarray], b: int) -> np.ndarray:
        parts = [np.asarray(src[n][b], np.float64).reshape(queries, -1) / scales[n] for n in group]
        return np.concatenate(parts, axis=1)

    aligned = dict(out)
    perms = []
    for b in range(batch):
        fr, fo = feats(ref, b), feats(out, b)
        cost = np.sqrt(((fr[:, None, :] - fo[None, :, :]) ** 2).sum(-1))
        perms.append(_assign(cost))
    for n in group:
        aligned[n] = np.stack([np.asarray(out[n][b])[perms[b]] for b in range(batch)])
    moved = int(sum(int((p != np.arange(queries)).sum()) for p in perms))
    return aligned, {n: moved for n in group}


def _assign(cost: np.ndarray) -> np.ndarray:
    """Column for each row, one-to-one, minimising total cost (Hungarian; greedy without scipy)."""
    try:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(cost)
        perm = np.empty(len(rows), dtype=np.int64)
        perm[rows] = cols
        return perm
    except ImportError:
        perm = np.full(cost.shape[0], -1, dtype=np.int64)
        taken: set[int] = set()
        for flat in np.argsort(cost, axis=None):
            r, c = divmod(int(flat), cost.shape[1])
            if perm[r] < 0 and c not in taken:
                perm[r] = c
                taken.add(c)
        return perm


def compare_with_torch(
    model: Any,
    family: Any,
    artifact: Any,
    *,
    samples: int,
    data: Any,
    ctx: Any,
    reference_preprocess: Any = None,
) -> dict[str, Any]:
    """Export parity: ONNX Runtime on the artifact vs PyTorch on the same real images (each through its own
    contract: raw pixels for an artifact with embedded preprocessing, the float pipeline for PyTorch)."""
    from vopt.datasets.images import describe, load_batch
    from vopt.runtimes.base import fixed_batch, run_batches
    from vopt.runtimes.ort import runner

    images = load_batch(data, artifact.preprocess, samples)
    ref_pre = reference_preprocess or artifact.preprocess
    ref_images = images if ref_pre == artifact.preprocess else load_batch(data, ref_pre, samples)
    batch_dim = artifact.io.inputs[0].shape[0] if artifact.io.inputs else None
    static = fixed_batch(batch_dim)  # -1 or 0 is open
    # A static-batch artifact usually comes from a static-batch module (e.g. a .pt2 program): feed it the
    # same.
    ref = postprocessed(torch_outputs(model, family, ref_images, batch=static or 8), artifact)
    with runner(artifact.path) as run:
        out = run_batches(run, artifact.io.inputs[0].name, [images], static_batch=static)
    result = compare_outputs(ref, out, skip=unordered(family, artifact), where="export parity")
    result["images"] = describe(data)
    result["samples"] = len(images)
    return result


def postprocessed(ref: dict[str, np.ndarray], artifact: Any) -> dict[str, np.ndarray]:
    """The PyTorch reference through the same detection post-processing the artifact has in its graph."""
    cfg = (artifact.meta or {}).get("postprocess")
    if not cfg:
        return ref
    from vopt.models.postprocess import apply

    return apply(ref, cfg)


def unordered(family: Any, artifact: Any) -> tuple[str, ...]:
    """Outputs compared as matched detections: the family's per-query outputs, or the post-processed ones."""
    cfg = (artifact.meta or {}).get("postprocess")
    return (*family.unordered_outputs, *(cfg["outputs"] if cfg else ()))
