"""fp16 that never overflows: the value ranges an fp32 ONNX graph really reaches (every node's outputs, on
inputs recorded by running the model as it is used: a diffusion pipeline's denoising loop), and the nodes
whose inputs or outputs go beyond what fp16 holds with headroom, which the fp16 conversion keeps in fp32
(TensorRT Model Optimizer's AutoCast does the same from its `--data_max`; it does not install beside this
stack: its ONNX extra pins onnx 1.21 and onnxruntime-gpu)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

FP16_MAX = 65504.0
# A node whose input or output reached |x| > DATA_MAX stays fp32: an eighth of fp16's largest value leaves
# headroom for the sums inside the node and for inputs the recording did not see.
DATA_MAX = FP16_MAX / 8


def record_ranges(model: Path | str, feeds: list[dict[str, np.ndarray]]) -> dict[str, float]:
    """max |x| of every float tensor of the graph (inputs, node outputs), over all `feeds`, on ONNX Runtime
    with graph optimizations off (so the names are the graph's own)."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(model))
    inferred = onnx.shape_inference.infer_shapes(proto)
    floats = {
        v.name
        for v in [*inferred.graph.value_info, *inferred.graph.output, *inferred.graph.input]
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    have = {o.name for o in proto.graph.output}
    for node in proto.graph.node:
        for name in node.output:
            if name and name in floats and name not in have:
                proto.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
                have.add(name)
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    session = ort.InferenceSession(proto.SerializeToString(), so, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    ranges: dict[str, float] = {}
    for f in feeds:
        for name, value in f.items():
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                ranges[name] = max(
                    ranges.get(name, 0.0), float(np.max(np.abs(value))) if np.size(value) else 0.0
                )
        for name, value in zip(names, session.run(names, f), strict=True):
            arr = np.asarray(value)
            if np.issubdtype(arr.dtype, np.floating) and arr.size:
                finite = np.abs(arr[np.isfinite(arr)]) if not np.all(np.isfinite(arr)) else np.abs(arr)
                top = float(np.inf) if finite.size < arr.size else float(finite.max(initial=0.0))
                ranges[name] = max(ranges.get(name, 0.0), top)
    return ranges


def overflow_nodes(
    model: Path | str | Any, ranges: dict[str, float], data_max: float = DATA_MAX
) -> dict[str, str]:
    """node name -> why it stays fp32: an input or output beyond `data_max` in the recorded ranges, or an fp32
    weight beyond fp16's range."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(model))
    big_weights = {
        t.name: float(np.max(np.abs(onnx.numpy_helper.to_array(t))))
        for t in proto.graph.initializer
        if t.data_type == onnx.TensorProto.FLOAT and np.prod(t.dims or [1]) > 0
    }
    kept: dict[str, str] = {}
    for node in proto.graph.node:
        worst = max(
            ((ranges.get(n, 0.0), n) for n in [*node.input, *node.output] if n),
            default=(0.0, ""),
        )
        weight = max(((big_weights.get(n, 0.0), n) for n in node.input if n), default=(0.0, ""))
        if worst[0] > data_max:
            kept[node.name] = f"|{worst[1]}| reaches {worst[0]:.4g} > {data_max:g} (recorded)"
        elif weight[0] > FP16_MAX:
            kept[node.name] = f"weight {weight[1]} reaches {weight[0]:.4g} > fp16 max {FP16_MAX:g}"
    return kept


def pipeline_feeds(ctx: Any, component: str, data: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """Every input `component` gets when the model of components runs as a whole in PyTorch (its family's
    run_components, e.g. a diffusion pipeline's denoising loop with the recipe's validate.pipeline settings),
    as a list of feeds. Cached per process: each component's compile step asks for the same run."""
    key = json.dumps(data, sort_keys=True, default=str) + str(
        getattr(ctx.artifacts.get("load"), "sha256", "")
    )
    if key not in _FEEDS:
        _FEEDS.clear()
        _FEEDS[key] = _run_pipeline(ctx, data)
    return _FEEDS[key].get(component, [])


_FEEDS: dict[str, dict[str, list[dict[str, np.ndarray]]]] = {}


def _run_pipeline(ctx: Any, data: dict[str, Any]) -> dict[str, list[dict[str, np.ndarray]]]:
    from vopt.quant.feeds import PipelineRecorder

    with PipelineRecorder(ctx) as recorder:
        return recorder.run(data.get("pipeline"))


def fp16_fallback(ctx: Any, source: Path | str, data: dict[str, Any] | None) -> tuple[dict[str, str], str]:
    """The nodes of `source` (an fp32 ONNX file of component ctx.component) to keep in fp32, and how they were
    found; ({}, why not) when there is nothing to record on."""
    if not data or ctx.component is None:
        return {}, "no recorded ranges (a single model: fp16 with the default op block list)"
    feeds = pipeline_feeds(ctx, ctx.component, data)
    if not feeds:
        return {}, f"no inputs recorded for {ctx.component}"
    ranges = record_ranges(source, feeds)
    kept = overflow_nodes(source, ranges, float(data.get("data_max") or DATA_MAX))
    return kept, f"ranges of {len(ranges)} tensors over {len(feeds)} recorded calls of {ctx.component}"
