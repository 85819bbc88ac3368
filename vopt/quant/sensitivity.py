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
    static = dim if isinstance(dim, int) and dim > 0 else None
    signal: dict[str, float] = {}
    noise: dict[str, float] = {}
    keys = [(p[0], p[1]) for p in pairs.values()] + [(p[2], p[3]) for p in pairs.values() if p[2]]
    for batch in split_static(calib.batches(samples), static):
        feed = batch if isinstance(batch, dict) else {input_name: batch}  # a component's named inputs
        fo = dict(zip(f_names, fs.run(f_names, feed), strict=True))
        qo = dict(zip(q_names, qs.run(q_names, feed), strict=True))
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
            f"{row['rank']:>4}  {row['drop_db']:>8.2f}  {row['out_sqnr_db']:>11.2f}  {row['op_type']:<10} "
            f"{row['node']}{mark}"
        )
    if len(table) > limit:
        lines.append(
            f"… {len(table) - limit} more layers in the manifest (steps[quantize].report.sensitivity)"
        )
    return lines


class IslandProbe:
    """Run a QDQ model with some layers made float by editing the graph, not by re-quantizing: each of the
    layer's dequantized inputs is wired back to its float source (activations: the tensor before its
    QuantizeLinear; weights and biases: the float model's initializer). Its consumers stay quantized. A probe
    costs one session on a few images, where a re-quantization costs seconds: what makes a per-layer
    sensitivity pass affordable. quantize.search writes its final float islands by the same edit
    (`model_bytes`) and checks that artifact with the step's gates."""

    def __init__(self, qdq_model: Path, float_model: Path, threads: int | None = None):
        import onnx
        from onnx import numpy_helper

        self.base = onnx.load(str(qdq_model))
        self.floats = {
            i.name: numpy_helper.to_array(i) for i in onnx.load(str(float_model)).graph.initializer
        }
        self.threads = threads
        graph = self.base.graph
        self.producer = {o: n for n in graph.node for o in n.output}
        self.inits = {i.name for i in graph.initializer}
        self.input_name = graph.input[0].name
        dim = graph.input[0].type.tensor_type.shape.dim[0]
        self.static = int(dim.dim_value) if dim.dim_value > 0 else None  # -1 (PaddlePaddle) is open
        self._small: dict[str, np.ndarray] = {}  # Q scales and zero points
        self._clips: dict[str, Any] = {}

    def _float_source(self, tensor: str, graph: Any, added: dict[str, str]) -> str | None:
        """The float tensor a DequantizeLinear output stands for, or None when it is not one."""
        from onnx import numpy_helper

        dq = self.producer.get(tensor)
        if dq is None or dq.op_type != "DequantizeLinear":
            return None
        src = dq.input[0]
        if src in self.inits:  # a quantized weight or bias: ORT names it '<float name>_quantized'
            name = src[: -len("_quantized")] if src.endswith("_quantized") else None
            if name is None or name not in self.floats:
                return None
            if name not in added:  # (a bias's DequantizeLinear output keeps the float name: use another)
                added[name] = f"{name}__vopt_float"
                graph.initializer.append(
                    numpy_helper.from_array(self.floats[name].astype(np.float32, copy=False), added[name])
                )
            return added[name]
        q = self.producer.get(src)
        if q is None or q.op_type != "QuantizeLinear":
            return None
        # The quantizer folds a ReLU/Clip into its Q range (the Clip node is gone): keep that clamp, drop
        # only the rounding. The range is what the quantized tensor could hold:
        # [(qmin - zp), (qmax - zp)] * scale.
        if src not in added:
            scale = self._init(q.input[1]).astype(np.float64)
            zp = self._init(q.input[2]) if len(q.input) > 2 and q.input[2] else np.zeros((), np.uint8)
            info = np.iinfo(zp.dtype)
            lo = np.float32((info.min - zp.astype(np.float64)) * scale)
            hi = np.float32((info.max - zp.astype(np.float64)) * scale)
            name = f"{src}__vopt_float"
            graph.initializer.extend(
                [
                    numpy_helper.from_array(np.asarray(lo, np.float32).reshape(()), name + "_lo"),
                    numpy_helper.from_array(np.asarray(hi, np.float32).reshape(()), name + "_hi"),
                ]
            )
            from onnx import helper

            added[src] = name
            self._clips[name] = helper.make_node(
                "Clip", [q.input[0], name + "_lo", name + "_hi"], [name], name=name
            )
        return added[src]

    def _init(self, name: str) -> np.ndarray:
        from onnx import numpy_helper

        if name not in self._small:
            self._small[name] = next(
                numpy_helper.to_array(i) for i in self.base.graph.initializer if i.name == name
            )
        return self._small[name]

    def model_bytes(self, float_nodes: list[str]) -> bytes:
        import onnx

        model = onnx.ModelProto()
        model.CopyFrom(self.base)
        graph = model.graph
        wanted = set(float_nodes)
        added: dict[str, str] = {}
        # new Clip nodes, placed before their first reader (topological order)
        before: dict[int, list[Any]] = {}
        for pos, node in enumerate(graph.node):
            if node.name not in wanted:
                continue
            for i, tensor in enumerate(node.input):
                self._clips = {}
                src = self._float_source(tensor, graph, added)
                before.setdefault(pos, []).extend(self._clips.values())
                if src is not None:
                    node.input[i] = src
        if any(before.values()):
            nodes = []
            for pos, node in enumerate(graph.node):
                nodes.extend(before.get(pos, []))
                nodes.append(node)
            del graph.node[:]
            graph.node.extend(nodes)
        return model.SerializeToString()

    def outputs(self, float_nodes: list[str], images: Any, output: str | None = None) -> np.ndarray:
        """One output (`output`, else the first) of the edited model on `images` (an array, or a component's
        named inputs as vopt.runtimes.base.Feeds), one static batch at a time."""
        import onnxruntime as ort

        from vopt.runtimes.base import Feeds
        from vopt.runtimes.ort import ACCURATE_LEVEL, session_options

        # Q/DQ as written, in float, as the gates' check runs them (vopt.runtimes.ort, accurate): the fused
        # u8 x s8 kernels saturate on x86 CPUs without VNNI. On this EPYC they moved EfficientNet-Lite0's QNN
        # QDQ model to a centered cosine of 0.946 against its own exact run, which made every 16-bit layer
        # look like the same large gain over a base that the gates never measured.
        so = session_options({"graph_optimization_level": ACCURATE_LEVEL}, self.threads)
        sess = ort.InferenceSession(self.model_bytes(float_nodes), so, providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        name = output if output in names else names[0]
        step = self.static or len(images)
        out = []
        whole = images.arrays if isinstance(images, Feeds) else images
        for batch in split_static(iter([whole]), step):
            feed = batch if isinstance(batch, dict) else {self.input_name: batch}
            out.append(sess.run([name], feed)[0])
        return np.concatenate(out)[: len(images)]
