"""Layer sensitivity: per-tensor SQNR between the float model's activations and the quantized model's,
on calibration data, streamed (only running sums are kept). A layer's `drop_db` is how much SQNR it
loses between its input and its output: the layers that add the most error rank first."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from vopt.quant.calibration import CalibrationSet, split_static


def _with_outputs(path: Path, names: list[str], dst: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(path))
    have = {o.name for o in model.graph.output}
    for n in names:
        if n not in have:
            model.graph.output.append(helper.make_tensor_value_info(n, TensorProto.FLOAT, None))
            have.add(n)
    onnx.save(model, str(dst))
    return dst


def _session(path: Path):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )  # reference Q/DQ semantics, no fusion
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


def rank_layers(
    float_model: Path,
    quant_model: Path,
    candidates: list[str],
    calib: CalibrationSet,
    samples: int,
    work: Path,
    rank_by: str = "drop",
) -> list[dict[str, Any]]:
    import onnx

    fgraph = onnx.load(str(float_model), load_external_data=False).graph
    qgraph = onnx.load(str(quant_model), load_external_data=False).graph
    fnodes = {n.name: n for n in fgraph.node}
    qnodes = {n.name: n for n in qgraph.node}
    inits = {i.name for i in fgraph.initializer}
    pairs: dict[str, tuple[str, str, str | None, str | None]] = {}  # node -> (f_out, q_out, f_in, q_in)
    for name in candidates:
        f, q = fnodes.get(name), qnodes.get(name)
        if f is None or q is None or not f.output or not q.output:
            continue
        f_in = f.input[0] if f.input and f.input[0] and f.input[0] not in inits else None
        q_in = q.input[0] if f_in is not None else None
        pairs[name] = (f.output[0], q.output[0], f_in, q_in)
    f_names = sorted({t for p in pairs.values() for t in (p[0], p[2]) if t})
    q_names = sorted({t for p in pairs.values() for t in (p[1], p[3]) if t})
    fs = _session(_with_outputs(float_model, f_names, work / "sens_float.onnx"))
    qs = _session(_with_outputs(quant_model, q_names, work / "sens_quant.onnx"))
    input_name = fs.get_inputs()[0].name
    dim = fs.get_inputs()[0].shape[0]
    static = dim if isinstance(dim, int) else None
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    keys = [(p[0], p[1]) for p in pairs.values()] + [(p[2], p[3]) for p in pairs.values() if p[2]]
    for batch in split_static(calib.batches(samples), static):
        fo = dict(zip(f_names, fs.run(f_names, {input_name: batch}), strict=True))
        qo = dict(zip(q_names, qs.run(q_names, {input_name: batch}), strict=True))
        for fk, qk in set(keys):
            a = np.asarray(fo[fk], np.float64)
            b = np.asarray(qo[qk], np.float64)
            if a.shape != b.shape:
                continue
            key = f"{fk}|{qk}"
            signal[key] = signal.get(key, 0.0) + float(np.sum(a * a))
            noise[key] = noise.get(key, 0.0) + float(np.sum((a - b) ** 2))

    def sqnr(fk: str | None, qk: str | None) -> float:
        key = f"{fk}|{qk}"
        if fk is None or key not in noise:
            return math.inf
        if noise[key] == 0:
            return math.inf
        if signal[key] == 0:
            return -math.inf
        return 10 * math.log10(signal[key] / noise[key])

    table = []
    for name, (fo_, qo_, fi, qi) in pairs.items():
        out_db, in_db = sqnr(fo_, qo_), sqnr(fi, qi)
        drop = (
            (in_db - out_db)
            if math.isfinite(in_db) and math.isfinite(out_db)
            else (0.0 if out_db == math.inf else 99.0)
        )
        table.append(
            {
                "node": name,
                "op_type": qnodes[name].op_type,
                "out_sqnr_db": _r(out_db),
                "in_sqnr_db": _r(in_db),
                "drop_db": _r(drop),
            }
        )
    if rank_by == "sqnr":  # lowest SQNR first: where the error has piled up
        table.sort(key=lambda r: (r["out_sqnr_db"], -r["drop_db"], r["node"]))
    else:  # most SQNR lost inside the layer first
        table.sort(key=lambda r: (-r["drop_db"], r["out_sqnr_db"], r["node"]))
    for i, row in enumerate(table, 1):
        row["rank"] = i
    return table


def _r(x: float) -> float | None:
    return round(x, 3) if math.isfinite(x) else (None if math.isnan(x) else (999.0 if x > 0 else -999.0))


def table_lines(
    table: list[dict[str, Any]], kept: list[str], to: str = "float", limit: int = 15
) -> list[str]:
    """The sensitivity table as text lines, for errors and the CLI."""
    lines = [f"{'rank':>4}  {'drop dB':>8}  {'out SQNR dB':>11}  {'op':<10} node"]
    for row in table[:limit]:
        mark = f"  (kept {to})" if row["node"] in kept else ""
        lines.append(
            f"{row['rank']:>4}  {row['drop_db']:>8.2f}  {row['out_sqnr_db']:>11.2f}  {row['op_type']:<10} {row['node']}{mark}"
        )
    if len(table) > limit:
        lines.append(
            f"… {len(table) - limit} more layers in the manifest (steps[quantize].report.sensitivity)"
        )
    return lines
