"""OpenVINO runtime: run ONNX or IR (.xml / IR directory) on an OpenVINO device, and read the exec graph."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vopt.targets.base import Runner

# vopt precision -> OpenVINO INFERENCE_PRECISION_HINT. Only bf16 asks for a lower precision: on CPUs with
# avx512_bf16 OpenVINO otherwise picks bf16 by itself, which would hide accuracy problems in checks.
PRECISION_HINTS = {"bf16": "bf16"}


def model_file(path: str | Path) -> Path:
    """The file OpenVINO reads: an .xml or .onnx as given, or the one .xml inside an IR directory."""
    p = Path(path)
    if p.is_dir():
        xmls = sorted(p.glob("*.xml"))
        if not xmls:
            raise FileNotFoundError(f"no .xml in OpenVINO IR directory {p}")
        return xmls[0]
    return p


# Leave INFERENCE_PRECISION_HINT unset: the plugin's own choice (bf16 on CPUs with avx512_bf16), what a deployment runs.
DEFAULT_HINT = "default"


def inference_hint(precision: str | None, override: str | None = None) -> str:
    return override or PRECISION_HINTS.get(precision or "fp32", "f32")


def compile_model(path: str | Path, *, device: str = "CPU", hint: str = "f32", threads: int | None = None,
                  performance_hint: str | None = None) -> Any:
    import openvino as ov

    core = ov.Core()
    config: dict[str, Any] = {}
    if device.split(":")[0] in ("CPU", "AUTO", "GPU") and hint != DEFAULT_HINT:
        config["INFERENCE_PRECISION_HINT"] = hint
    if threads and device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
    if performance_hint:
        config["PERFORMANCE_HINT"] = performance_hint
    model = core.read_model(str(model_file(path)))
    return core.compile_model(model, device, config)


def exec_graph_summary(compiled: Any) -> dict[str, Any]:
    """Which layer types and precisions the plugin really executes (constants left out)."""
    layers: Counter[str] = Counter()
    precisions: Counter[str] = Counter()
    for op in compiled.get_runtime_model().get_ordered_ops():
        info = op.get_rt_info()
        layer = info["layerType"].astype(str) if "layerType" in info else op.get_type_name()
        if layer in ("Const", "Input", "Output"):
            continue
        layers[layer] += 1
        if "runtimePrecision" in info:
            precisions[info["runtimePrecision"].astype(str)] += 1
    return {"layers": dict(layers.most_common()), "runtime_precision": dict(precisions.most_common())}


def runner(path: str | Path, *, device: str = "CPU", precision: str | None = None, hint: str | None = None,
           threads: int | None = None, performance_hint: str | None = None) -> Runner:
    import openvino as ov

    used_hint = inference_hint(precision, hint)
    compiled = compile_model(path, device=device, hint=used_hint, threads=threads, performance_hint=performance_hint)
    request = compiled.create_infer_request()
    outputs = [(o, _name(o, i)) for i, o in enumerate(compiled.outputs)]
    inputs = {_name(i, n): i for n, i in enumerate(compiled.inputs)}

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        result = request.infer({inputs.get(k, k): np.ascontiguousarray(v) for k, v in feeds.items()})
        return {name: np.array(result[port]) for port, name in outputs}

    try:
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        ran = str(ran.get_type_name() if hasattr(ran, "get_type_name") else ran)
    except Exception:  # some devices do not expose the property
        ran = used_hint
    info = {
        "openvino": ov.__version__,
        "device": device,
        "inference_precision": ran,
        "precision_hint": used_hint,
        "input_format": "onnx" if model_file(path).suffix == ".onnx" else "openvino-ir",
        "exec_graph": exec_graph_summary(compiled),
    }
    return Runner(run=run, runtime=f"openvino-{device.lower()}", info=info)


def _name(port: Any, index: int) -> str:
    # A compiled port can carry several tensor names (DETR's pred_boxes also answers to the exporter's
    # "/model/bbox_predictor/.../Add_output_0"): prefer the model's own name over a "/"-path one.
    try:
        names = sorted(n for n in port.get_names() if not n.startswith("/"))
        return names[0] if names else port.get_any_name()
    except RuntimeError:  # unnamed port
        return f"output_{index}"
