"""OpenVINO runtime: run ONNX or IR (.xml / IR directory) on an OpenVINO device, and read the exec graph.

The one OpenVINO runner. Checks run it `accurate` (INFERENCE_PRECISION_HINT f32: this CPU's default is bf16);
speed checks and benchmarks run it as deployed: the hints the IR records in its `runtime_options` rt_info
(OpenVINO's own section for them), else the plugin's defaults."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vopt.runtimes.base import Runner

RUNTIME_NAME = "openvino"
# Properties the compile step records in the IR (rt_info runtime_options) and this runner applies.
RECORDED = ("INFERENCE_PRECISION_HINT", "PERFORMANCE_HINT", "INFERENCE_NUM_THREADS")

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


# Leave INFERENCE_PRECISION_HINT unset: the plugin's own choice (bf16 on CPUs with avx512_bf16), what a
# deployment runs.
DEFAULT_HINT = "default"


def inference_hint(precision: str | None, override: str | None = None) -> str:
    return override or PRECISION_HINTS.get(precision or "fp32", "f32")


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


def recorded_settings(path: str | Path) -> dict[str, str]:
    """The runtime properties an IR carries in rt_info `runtime_options` ({} for an ONNX file or a plain
    IR)."""
    import openvino as ov

    file = model_file(path)
    if file.suffix != ".xml":
        return {}
    model = ov.Core().read_model(str(file))
    return _runtime_options(model)


def _runtime_options(model: Any) -> dict[str, str]:
    if not model.has_rt_info(["runtime_options"]):
        return {}
    return {
        k: model.get_rt_info(["runtime_options", k]).astype(str)
        for k in RECORDED
        if model.has_rt_info(["runtime_options", k])
    }


def record_settings(model: Any, settings: dict[str, Any]) -> None:
    """Write runtime properties into an ov.Model's rt_info before it is saved."""
    for key, value in settings.items():
        if value is not None:
            model.set_rt_info(str(value), ["runtime_options", key])


def runner(
    path: str | Path,
    *,
    device: str = "CPU",
    precision: str | None = None,
    hint: str | None = None,
    threads: int | None = None,
    performance_hint: str | None = None,
    deployment: bool = False,
    streams: int | None = None,
    cache_dir: str | None = None,
) -> Runner:
    """`deployment`: the IR's recorded hints and, for the precision, the plugin's own choice (what a
    deployment runs); otherwise INFERENCE_PRECISION_HINT f32 (bf16 when precision is bf16), for accuracy
    checks."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(model_file(path)))
    recorded = _runtime_options(model) if deployment else {}
    if deployment:
        used_hint = (
            hint
            or recorded.get("INFERENCE_PRECISION_HINT")
            or PRECISION_HINTS.get(precision or "", DEFAULT_HINT)
        )
    else:
        used_hint = inference_hint(precision, hint)
    threads = threads or (
        int(recorded["INFERENCE_NUM_THREADS"]) if "INFERENCE_NUM_THREADS" in recorded else None
    )
    performance_hint = performance_hint or recorded.get("PERFORMANCE_HINT")
    config: dict[str, Any] = {}
    if device.split(":")[0] in ("CPU", "AUTO", "GPU") and used_hint != DEFAULT_HINT:
        config["INFERENCE_PRECISION_HINT"] = used_hint
    if threads and device == "CPU":
        config["INFERENCE_NUM_THREADS"] = threads
    if performance_hint:
        config["PERFORMANCE_HINT"] = performance_hint
    streams = streams or (int(recorded["NUM_STREAMS"]) if "NUM_STREAMS" in recorded else None)
    if streams:
        config["NUM_STREAMS"] = streams
    if cache_dir:  # the compiled blob is stored there; the next compile_model of this model loads it
        core.set_property({"CACHE_DIR": cache_dir})
    compiled = core.compile_model(str(model_file(path)) if cache_dir else model, device, config)
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
    batch = compiled.inputs[0].get_partial_shape()[0] if compiled.inputs else None
    info = {
        "openvino": ov.__version__,
        "device": device,
        "inference_precision": ran,
        "precision_hint": used_hint,
        "settings": config,
        "model_cache": cache_dir,
        "input_format": "onnx" if model_file(path).suffix == ".onnx" else "openvino-ir",
        "input_name": _name(compiled.inputs[0], 0) if compiled.inputs else None,
        "static_batch": batch.get_length() if batch is not None and batch.is_static else None,
        "exec_graph": exec_graph_summary(compiled),
    }
    label = f"openvino-{device.lower()}"
    if deployment:
        label += f" ({'default precision hint' if used_hint == DEFAULT_HINT else 'hint ' + used_hint}: {ran})"
    return Runner(run=run, runtime=label, info=info)


def open_artifact(
    path: str | Path,
    *,
    settings: dict[str, Any] | None = None,
    threads: int | None = None,
    accurate: bool = False,
) -> Runner:
    """The format table's entry. `settings`: the compile section of a target that runs on OpenVINO (device,
    inference_precision, performance_hint, threads, precision); a device not present here falls back to
    CPU."""
    import openvino as ov

    s = settings or {}
    device = s.get("device") or "CPU"
    if device != "AUTO" and device not in ov.Core().available_devices:
        device = "CPU"  # timed where OpenVINO is; the runtime label names the device
    if accurate:
        return runner(path, device=device, hint="f32", threads=threads or s.get("threads"))
    return runner(
        path,
        device=device,
        precision=s.get("precision"),
        hint=s.get("inference_precision"),
        threads=threads or s.get("threads"),
        performance_hint=s.get("performance_hint"),
        deployment=True,
    )


def _name(port: Any, index: int) -> str:
    # A compiled port can carry several tensor names (DETR's pred_boxes also answers to the exporter's
    # "/model/bbox_predictor/.../Add_output_0"): prefer the model's own name over a "/"-path one.
    try:
        names = sorted(n for n in port.get_names() if not n.startswith("/"))
        return names[0] if names else port.get_any_name()
    except RuntimeError:  # unnamed port
        return f"output_{index}"
