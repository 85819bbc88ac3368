"""Speed-aware mixed precision: the quantized layers whose int8 kernel runs slower than the float one on the
target's runtime stay float, when the whole artifact is then faster and still holds the check's gates.

Per-layer times come from the runtime's own profiler (vopt.profiling, what `vopt profile` prints): ONNX
Runtime's node events, OpenVINO's PERF_COUNT. Both models are profiled as deployed (ORT_ENABLE_ALL; OpenVINO
at its default precision hint), alternately, and each layer keeps the median of its times. A runtime renames
what it fuses, so each profiled node is mapped back to the float ONNX layer it computes: through the weights
it reads (ORT's optimized graph keeps initializer names), or its name (OpenVINO keeps the ONNX node name, with
'/WithoutBiases' and such appended, or the output's name for the graph's last op).

Measured on the AMD EPYC without VNNI (2 threads, batch 1): OpenVINO's int8 FullyConnected layers ran slower
than f32 (ViT-B/16, docs/benchmarks.md), and on ORT the int8 stem conv of EfficientNet-Lite0 (3 input
channels) took 3.1 ms against 2.1 ms in float."""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vopt.quant.protocol import CheckResult, QuantizeSession
from vopt.runtimes.openvino_names import onnx_layer, onnx_producers

# The layers a scheme quantizes with weights: what can be moved to float one by one.
LAYER_OPS = ("Conv", "ConvTranspose", "MatMul", "Gemm")
# int8 must be at least this much slower than float for a layer to be kept float: below it the two are within
# the profiler's noise on a shared machine.
SLOWER_BY = 1.05


@dataclass
class LayerCost:
    node: str  # the float ONNX node
    int8_ms: float
    float_ms: float

    @property
    def saves_ms(self) -> float:
        """What keeping the layer float saves per inference (negative: what it costs)."""
        return self.int8_ms - self.float_ms

    def row(self) -> dict[str, Any]:
        return {
            "node": self.node,
            "int8_ms": round(self.int8_ms, 4),
            "float_ms": round(self.float_ms, 4),
            "float_saves_ms": round(self.saves_ms, 4),
        }


def weighted_layers(model: Path) -> list[str]:
    """The float model's layers with a constant weight (Conv, ConvTranspose, MatMul, Gemm), in graph order."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type in LAYER_OPS and n.name and len(n.input) > 1 and n.input[1] in inits
    ]


# -- mapping profiled nodes back to ONNX layers ------------------------------------------------------
def _ort_node_layers(path: Path) -> dict[str, str]:
    """ORT's optimized node name -> the ONNX layer it computes, through the initializers it reads (a QDQ
    file's `<w>_quantized`, a float layer's weight or bias). ORT names the nodes it makes itself
    (`<output>_nchwc`, `<node>_token_3`), but keeps the names of initializers it does not rewrite."""
    import tempfile

    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    owner: dict[str, str] = {}  # initializer -> layer
    dq_source = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    for n in graph.node:
        if n.op_type not in LAYER_OPS or not n.name:
            continue
        for name in n.input[1:]:
            src = dq_source.get(name, name)
            if src in inits:
                owner.setdefault(src, n.name)
    with tempfile.TemporaryDirectory(prefix="vopt-layers-") as tmp:
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        so.log_severity_level = 3
        ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        optimized = onnx.load(so.optimized_model_filepath, load_external_data=False).graph
    found = {}
    for n in optimized.node:
        layer = next((owner[i] for i in n.input if i in owner), None)
        if layer is not None:
            found[n.name] = layer
    return found


def _ov_node_layers(op_names: list[str], model: Path, layers: list[str]) -> dict[str, str]:
    producers, wanted = onnx_producers(model), set(layers)
    return {op: layer for op in op_names if (layer := onnx_layer(op, wanted, producers)) is not None}


# -- profiling ------------------------------------------------------------------------------------------
def _per_layer(profile: Any, mapping: dict[str, str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for op in profile.ops:
        layer = mapping.get(op.node)
        if layer is not None:
            out[layer] = out.get(layer, 0.0) + op.ms
    return out


def layer_costs(
    float_model: Path,
    quantized: Path,
    fmt: str,
    feeds: dict[str, np.ndarray],
    *,
    threads: int | None = None,
    repeats: int = 3,
    runs: int = 10,
) -> tuple[list[LayerCost], dict[str, Any]]:
    """Each quantized layer's time in int8 and in float on the runtime of `fmt` (the quantized artifact's
    format; the float ONNX runs on the same runtime), the median over `repeats` alternating profiles of `runs`
    calls each. Returns the costs (graph order) and what was profiled."""
    from vopt.registry import get_format, load_object

    spec = get_format(fmt).profiler
    if spec is None:
        return [], {"status": "not measured", "reason": f"no per-layer profiler for {fmt} artifacts"}
    profile = load_object(spec)
    layers = weighted_layers(float_model)
    times: dict[str, dict[str, list[float]]] = {"int8": {}, "float": {}}
    maps: dict[str, dict[str, str]] = {}
    totals: dict[str, list[float]] = {"int8": [], "float": []}
    for _ in range(repeats):
        for side, path in (("float", float_model), ("int8", quantized)):
            prof = profile(path, feeds, runs=runs, threads=threads)
            if side not in maps:
                names = [op.node for op in prof.ops]
                maps[side] = (
                    _ort_node_layers(Path(path))
                    if spec.endswith(":profile_onnx")
                    else _ov_node_layers(names, float_model, layers)
                )
            totals[side].append(prof.total_ms)
            for layer, ms in _per_layer(prof, maps[side]).items():
                times[side].setdefault(layer, []).append(ms)
    costs = [
        LayerCost(n, statistics.median(times["int8"][n]), statistics.median(times["float"][n]))
        for n in layers
        if n in times["int8"] and n in times["float"]
    ]
    info = {
        "status": "ok",
        "runtime": prof.runtime,
        "profiles": f"{repeats} alternating profiles of {runs} calls each, per-layer median",
        "int8_total_ms": round(statistics.median(totals["int8"]), 3),
        "float_total_ms": round(statistics.median(totals["float"]), 3),
        "layers_matched": len(costs),
        "layers": len(layers),
    }
    return costs, info


def slower_in_int8(costs: list[LayerCost]) -> list[LayerCost]:
    return [c for c in costs if c.int8_ms > SLOWER_BY * c.float_ms]


# -- the quantize step's pass ------------------------------------------------------------------------------
def keep_slow_layers_float(
    session: QuantizeSession, model: Path, first: Path, checked: CheckResult | None
) -> tuple[Path, list[str], CheckResult | None, dict[str, Any]]:
    """Profile the float and the all-int8 model, quantize again with the layers whose int8 kernel is slower
    kept float, and keep that artifact when it holds the gates the first one held and runs faster, timed
    interleaved on the target's runtime. Returns (artifact, layers kept float for speed, its check,
    report)."""
    from vopt.quant.fallback import passed
    from vopt.runtimes.base import pad_to

    cfg, scheme = session.cfg, session.scheme
    images = session.check_images
    batch = cfg.input_shape[0]
    name = session.as_artifact(first).io.inputs[0].name
    feeds = {name: np.ascontiguousarray(pad_to(np.asarray(images[:batch]), batch))}
    with session.progress("speed: profile each layer in int8 and in float", None):
        costs, report = layer_costs(model, first, scheme.output_format, feeds)
    report["table"] = [c.row() for c in sorted(costs, key=lambda c: -c.saves_ms)]
    slow = [c.node for c in slower_in_int8(costs)]
    report["slower_in_int8"] = slow
    report["kept"] = False
    if report["status"] != "ok":
        return first, [], checked, report
    if not slow:
        report["why"] = "no layer's int8 kernel is slower than its float one"
        return first, [], checked, report
    with session.progress(f"speed: {len(slow)} layer(s) in float", None):
        suffix = Path(scheme.output_name()).suffix
        path = scheme.quantize(model, slow, scheme.work / f"speed_float_{len(slow)}{suffix}")
    got = session.evaluate(path)
    if checked is not None and got is not None and passed(checked["gates"]) and not passed(got["gates"]):
        report["why"] = "it does not hold the gates the all-int8 artifact held"
        return first, [], checked, report
    sp = session.compare_speed(first, path, "speed: slow layers in float vs all-int8")
    report["speed_vs_all_int8"] = {
        k: sp[k] for k in ("status", "speedup", "speedup_ci95", "runtime", "reason") if k in sp
    }
    # A tie (an interval that straddles 1) keeps them when the estimate is not below 1: the float layers
    # cost no speed that the timing can show, and they only remove quantization error.
    if sp.get("status") not in ("ok", "inconclusive") or not sp.get("speedup") or sp["speedup"] < 1.0:
        report["why"] = (
            f"slower: {sp['speedup']:.3f}x all-int8 ({sp.get('status')})"
            if sp.get("speedup")
            else f"not timed: {sp.get('reason', sp.get('status'))}"
        )
        return first, [], checked, report
    report["kept"] = True
    report["why"] = f"{sp['speedup']:.3f}x all-int8 ({sp['status']}), gates held"
    return path, slow, got, report
