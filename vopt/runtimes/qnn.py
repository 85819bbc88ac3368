"""Qualcomm QNN through the onnxruntime-qnn plugin EP, on the HTP backend (its x86 simulator off-device)."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from vopt.runtimes.base import Runner

_registered = False


def ep_devices() -> list[Any]:
    """Register the plugin EP library once per process and return its devices."""
    global _registered
    import onnxruntime as ort
    import onnxruntime_qnn as oq

    if not _registered:
        try:
            ort.register_execution_provider_library(oq.get_ep_name(), oq.get_library_path())
        except Exception as exc:  # already registered by someone else in this process
            if "already" not in str(exc).lower():
                raise
        _registered = True
    return [d for d in ort.get_ep_devices() if d.ep_name == oq.get_ep_name()]


def provider_options(
    soc_model: str | None = None, htp_arch: int | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    import onnxruntime_qnn as oq

    opts = {"backend_path": oq.get_qnn_htp_path()}
    if soc_model:
        opts["soc_model"] = str(soc_model)
    if htp_arch:
        opts["htp_arch"] = str(htp_arch)
    opts.update(extra or {})
    return opts


def session_options(
    *,
    disable_cpu_fallback: bool = False,
    soc_model: str | None = None,
    htp_arch: int | None = None,
    config: dict[str, str] | None = None,
    profile_prefix: str | None = None,
    htp: dict[str, str] | None = None,
) -> Any:
    """`htp`: further QNN EP provider options (htp_performance_mode, vtcm_mb, enable_htp_fp16_precision)."""
    import onnxruntime as ort

    devices = ep_devices()
    if not devices:
        raise RuntimeError("onnxruntime-qnn registered no device")
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_provider_for_devices(devices, provider_options(soc_model, htp_arch, htp))
    if disable_cpu_fallback:
        so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    for key, value in (config or {}).items():
        so.add_session_config_entry(key, value)
    if profile_prefix:
        so.enable_profiling = True
        so.profile_file_prefix = profile_prefix
    return so


def session(path: str | Path, **kw: Any) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), sess_options=session_options(**kw))


def write_context_model(
    path: str | Path,
    out: str | Path,
    *,
    soc_model: str | None,
    htp_arch: int | None,
    embed: bool = True,
    htp: dict[str, str] | None = None,
) -> None:
    """Compile the QDQ model into a QNN context binary wrapped in an EPContext ONNX model."""
    config = {
        "ep.context_enable": "1",
        "ep.context_file_path": str(out),
        "ep.context_embed_mode": "1" if embed else "0",
    }
    session(path, soc_model=soc_model, htp_arch=htp_arch, config=config, htp=htp)


def zero_feeds(sess: Any) -> dict[str, np.ndarray]:
    dtypes = {
        "tensor(float)": np.float32,
        "tensor(float16)": np.float16,
        "tensor(uint8)": np.uint8,
        "tensor(int8)": np.int8,
        "tensor(uint16)": np.uint16,
        "tensor(int64)": np.int64,
        "tensor(int32)": np.int32,
    }
    feeds = {}
    for i in sess.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        feeds[i.name] = np.zeros(shape, dtype=dtypes.get(i.type, np.float32))
    return feeds


def placement(
    path: str | Path,
    *,
    disable_cpu_fallback: bool = False,
    soc_model: str | None = None,
    htp_arch: int | None = None,
    workdir: str | Path | None = None,
    htp: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Where the nodes ran: one profiled run, counting kernels per EP. The QNN EP shows up as fused
    partitions; nodes it did not take appear one by one on the CPU EP."""
    import tempfile

    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    graph_nodes = len(graph.node)
    # Quantizing a graph input / dequantizing a graph output may stay on CPU even with the fallback disabled.
    ins, outs = {i.name for i in graph.input}, {o.name for o in graph.output}
    boundary = {
        n.name
        for n in graph.node
        if (n.op_type == "QuantizeLinear" and n.input[0] in ins)
        or (n.op_type == "DequantizeLinear" and n.output[0] in outs)
    }
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        sess = session(
            path,
            disable_cpu_fallback=disable_cpu_fallback,
            soc_model=soc_model,
            htp_arch=htp_arch,
            profile_prefix=os.path.join(tmp, "qnn"),
            htp=htp,
        )
        sess.run(None, zero_feeds(sess))
        events = json.loads(Path(sess.end_profiling()).read_text())
    kernels = [e for e in events if e.get("cat") == "Node" and e.get("name", "").endswith("_kernel_time")]
    qnn = [e for e in kernels if e["args"].get("provider") == "QNNExecutionProvider"]
    cpu = [e for e in kernels if e["args"].get("provider") == "CPUExecutionProvider"]
    io_qdq = [e for e in cpu if e["name"].removesuffix("_kernel_time") in boundary]
    cpu = [e for e in cpu if e not in io_qdq]
    cpu_ops = Counter(e["args"].get("op_name", "?") for e in cpu)
    order = {n.name: i for i, n in enumerate(graph.node)}  # CPU nodes in graph order, each named once
    cpu_names = sorted({e["name"].removesuffix("_kernel_time") for e in cpu}, key=lambda n: order.get(n, -1))
    return {
        "graph_nodes": graph_nodes,
        "qnn_partitions": len(qnn),
        "qnn_nodes": max(graph_nodes - len(cpu) - len(io_qdq), 0),
        "cpu_nodes": len(cpu),
        "cpu_io_qdq": len(io_qdq),
        "cpu_ops": dict(cpu_ops.most_common()),
        # exactly which nodes ran where: these on the CPU EP, every other node of the graph in a QNN partition
        "cpu_node_names": cpu_names,
        "providers": sess.get_providers(),
    }


def runner(
    path: str | Path,
    *,
    disable_cpu_fallback: bool = False,
    soc_model: str | None = None,
    htp_arch: int | None = None,
    htp: dict[str, str] | None = None,
) -> Runner:
    import onnxruntime as ort
    import onnxruntime_qnn as oq

    sess = session(
        path, disable_cpu_fallback=disable_cpu_fallback, soc_model=soc_model, htp_arch=htp_arch, htp=htp
    )
    names = [o.name for o in sess.get_outputs()]

    def run(feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outs = sess.run(names, feeds)
        return {
            n: np.asarray(o, dtype=np.float32) if o.dtype == np.float16 else o
            for n, o in zip(names, outs, strict=True)
        }

    info = {
        "onnxruntime": ort.__version__,
        "onnxruntime_qnn": _version("onnxruntime-qnn"),
        "backend": "QNN HTP (x86 simulator)" if os.uname().machine in ("x86_64", "AMD64") else "QNN HTP",
        "backend_path": oq.get_qnn_htp_path(),
        "disable_cpu_fallback": disable_cpu_fallback,
        "provider_options": {
            k: v for k, v in provider_options(soc_model, htp_arch, htp).items() if k != "backend_path"
        },
        "timing_note": "the x86 HTP simulator emulates the NPU: its latency says nothing about the device's",
        "placement": placement(
            path, disable_cpu_fallback=disable_cpu_fallback, soc_model=soc_model, htp_arch=htp_arch, htp=htp
        ),
    }
    return Runner(run=run, runtime="qnn-htp", info=info)


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None
