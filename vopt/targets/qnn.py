"""qnn: a QDQ ONNX (u8/u16 activations) for Qualcomm NPUs, optionally precompiled into an EPContext model,
run through the onnxruntime-qnn plugin EP on the HTP backend (the x86 simulator on this machine)."""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from vopt.core.artifact import Artifact
from vopt.errors import BackendUnavailable, BuildError, first_line
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target


class QnnConfig(CompileBase):
    target: Literal["qnn"] = "qnn"
    soc_model: str | None = Field(
        default=None,
        description="Qualcomm SoC id for the context binary (QNN `soc_model`, e.g. '60' for SM8650).",
    )
    htp_arch: int | None = Field(
        default=None, ge=1, le=1000, description="HTP architecture version (e.g. 73, 75)."
    )
    context_binary: bool = Field(
        default=False,
        description="Also precompile a QNN context binary into an EPContext model (implied by soc_model).",
    )
    embed_context: bool = Field(
        default=True, description="Embed the context binary inside the EPContext ONNX file."
    )
    disable_cpu_fallback: bool = Field(
        default=False,
        description="Gate: fail unless the QNN EP takes every node (session.disable_cpu_ep_fallback).",
    )
    allow_cpu_nodes: list[str] = Field(
        default_factory=list,
        description="Gate: node-name globs that may run on the CPU EP (a detector's NMS tail: "
        "['*/postprocess/*']); any other node there fails the build. Without disable_cpu_fallback.",
    )
    htp_performance_mode: (
        Literal[
            "burst",
            "balanced",
            "default",
            "high_performance",
            "high_power_saver",
            "low_balanced",
            "low_power_saver",
            "power_saver",
            "extreme_power_saver",
            "sustained_high_performance",
        ]
        | None
    ) = Field(
        default=None,
        description="QNN EP htp_performance_mode: the NPU's power/performance vote (burst for "
        "latency, power_saver for battery); the EP's default when omitted.",
    )
    vtcm_mb: int | None = Field(
        default=None, ge=1, le=256, description="QNN EP vtcm_mb: HTP tightly coupled memory to reserve (MB)."
    )
    enable_htp_fp16_precision: bool | None = Field(
        default=None,
        description="QNN EP enable_htp_fp16_precision: run float ops in fp16 on the HTP (needs soc_model).",
    )

    @model_validator(mode="after")
    def _check_fp16(self) -> QnnConfig:
        return _fp16_needs_soc(self)


def _fp16_needs_soc(cfg: QnnConfig) -> QnnConfig:
    if cfg.enable_htp_fp16_precision and not cfg.soc_model:
        raise ValueError(
            "enable_htp_fp16_precision needs soc_model (the QNN EP refuses fp16 precision mode "
            "without a target SoC)"
        )
    return cfg


def htp_options(cfg: QnnConfig) -> dict[str, str]:
    """The recipe's HTP knobs as QNN EP provider options (strings, as the EP takes them)."""
    opts: dict[str, str] = {}
    if cfg.htp_performance_mode:
        opts["htp_performance_mode"] = cfg.htp_performance_mode
    if cfg.vtcm_mb:
        opts["vtcm_mb"] = str(cfg.vtcm_mb)
    if cfg.enable_htp_fp16_precision is not None:
        opts["enable_htp_fp16_precision"] = "1" if cfg.enable_htp_fp16_precision else "0"
    return opts


class QnnTarget(Target):
    name = "qnn"
    runtime_name = "onnxruntime-qnn"
    emulated = "QNN runs here on the x86 HTP simulator: timings would not reflect the NPU"
    Config = QnnConfig
    extra = "qnn"
    requires = ("onnxruntime", "onnxruntime_qnn")
    default_opset = 17
    default_precision = "int8"
    static_shapes = True  # HTP graphs are compiled for fixed shapes
    quant_scheme = "qnn-qdq"  # onnxruntime.quantization's QNN QDQ config (u8/u16 activations, u8 weights)
    description = "Qualcomm QNN (HTP) via onnxruntime-qnn"

    def tool_versions(self) -> list[str]:
        return ["onnxruntime", "onnxruntime-qnn"]

    def hardware(self) -> tuple[bool, str]:
        ok, why = self.available()
        if not ok:
            return False, why
        try:
            from vopt.runtimes.qnn import ep_devices

            devices = ep_devices()
        except Exception as exc:  # a broken plugin install
            return False, f"QNN EP did not register: {first_line(exc, limit=200)}"
        if not devices:
            return False, "QNN EP registered no device"
        if platform.machine() in ("x86_64", "AMD64"):
            return True, "no Snapdragon NPU here; runs on the QNN HTP x86 simulator"
        return True, "QNN HTP backend"

    def compile(self, artifact: Artifact, cfg: QnnConfig, ctx) -> Artifact:
        if importlib.util.find_spec("onnxruntime_qnn") is None:
            raise BackendUnavailable(
                "the qnn target needs the 'onnxruntime-qnn' package: pip install 'vopt[qnn]'"
            )
        import onnx

        from vopt.runtimes.qnn import write_context_model
        from vopt.targets.metadata import (
            artifact_metadata,
            effective_precision,
            qdq_precision,
            set_onnx_metadata,
        )

        self.check_format(artifact)
        setting = self.precision(cfg)
        proto = onnx.load(artifact.path)
        qdq = qdq_summary(proto)
        if setting in ("int8", "int16") and not qdq["quantize_nodes"]:
            raise BuildError(
                f"precision {setting} needs a QDQ model, but the input has no QuantizeLinear nodes: "
                "add a `quantize:` section (the qnn scheme makes u8/u16 QDQ)",
                stage="compile",
            )
        fixed = _fix_dynamic_dims(proto, ctx.model_input.shape)
        if fixed:
            ctx.warn(f"fixed dynamic dims for HTP: {', '.join(fixed)}")
        # u16 activations: int16
        precision = effective_precision(artifact, setting, built=qdq_precision(proto))
        meta = artifact_metadata(artifact, ctx.build_name, self.name, precision)
        set_onnx_metadata(proto, meta)
        path = ctx.out("model.onnx")
        onnx.save(proto, str(path))

        where = self._placement(path, cfg, ctx)
        ctx.report.update(qdq=qdq, placement=where, provider_options=htp_options(cfg))
        if cfg.allow_cpu_nodes:  # e.g. the network on the HTP, the NMS tail on the CPU EP
            import fnmatch

            stray = [
                n
                for n in where["cpu_node_names"]
                if not any(fnmatch.fnmatchcase(n, g) for g in cfg.allow_cpu_nodes)
            ]
            if stray:
                raise BuildError(
                    f"compile.allow_cpu_nodes: {len(stray)} node(s) outside {cfg.allow_cpu_nodes} ran on the "
                    f"CPU EP instead of the HTP: {', '.join(stray[:8])}",
                    stage="compile",
                )
        result = artifact.derive(path, format="onnx", meta={"precision": precision})
        if cfg.context_binary or cfg.soc_model:
            # embed_context: false keeps the context binary in a .bin next to the EPContext model: one
            # directory.
            ctx_dir = ctx.out("qnn_context") if not cfg.embed_context else ctx.workdir
            ctx_dir.mkdir(parents=True, exist_ok=True)
            ctx_path = ctx_dir / "model_ctx.onnx"
            try:
                write_context_model(
                    path,
                    ctx_path,
                    soc_model=cfg.soc_model,
                    htp_arch=cfg.htp_arch,
                    embed=cfg.embed_context,
                    htp=htp_options(cfg),
                )
            except Exception as exc:
                raise BuildError(
                    f"QNN context binary generation failed: {_first_line(exc)}", stage="compile"
                ) from exc
            ctx_proto = onnx.load(str(ctx_path))
            set_onnx_metadata(
                ctx_proto,
                {**meta, "vopt.qnn.soc_model": str(cfg.soc_model), "vopt.qnn.htp_arch": str(cfg.htp_arch)},
            )
            onnx.save(ctx_proto, str(ctx_path))
            ctx.report["context_model"] = {
                "nodes": [n.op_type for n in ctx_proto.graph.node],
                "soc_model": cfg.soc_model,
            }
            result = artifact.derive(ctx_path, format="qnn-context", meta={"precision": precision})
            if not cfg.embed_context:
                result = artifact.derive(ctx_dir, format="qnn-context", meta={"precision": precision})
        activations = "/".join(qdq["activation_types"]) or "float"
        ctx.report["summary"] = (
            f"{qdq['quantize_nodes']} Q / {qdq['dequantize_nodes']} DQ ({activations}), "
            f"QNN took {where['qnn_nodes']}/{where['graph_nodes']} nodes in {where['qnn_partitions']} "
            "partition(s), "
            f"{where['cpu_nodes']} on CPU" + (", EPContext written" if result.format == "qnn-context" else "")
        )
        return result

    @staticmethod
    def _placement(path, cfg: QnnConfig, ctx) -> dict:
        """Node placement as deployed. With disable_cpu_fallback the gate is ORT's own: the session must load
        with session.disable_cpu_ep_fallback; when it does not, a session with fallback names the CPU ops."""
        from vopt.runtimes.diagnose import log_path, native_output_to, rejected_graph_error
        from vopt.runtimes.qnn import placement, session

        kw = {
            "soc_model": cfg.soc_model,
            "htp_arch": cfg.htp_arch,
            "workdir": ctx.workdir,
            "htp": htp_options(cfg),
        }
        log = log_path(f"{ctx.build_name}-qnn")

        def rejected(
            exc: Exception,
        ) -> BuildError:  # bisects to the nodes QNN rejects (vopt/runtimes/diagnose.py)
            loads = lambda p: session(p, soc_model=cfg.soc_model, htp_arch=cfg.htp_arch, htp=kw["htp"])  # noqa: E731
            return rejected_graph_error("QNN HTP", path, exc, loads, log=log, workdir=ctx.workdir)

        try:
            with native_output_to(log):
                return placement(path, disable_cpu_fallback=cfg.disable_cpu_fallback, **kw)
        except Exception as exc:
            if not cfg.disable_cpu_fallback:
                raise rejected(exc) from exc
            first = exc
        try:
            with native_output_to(log):
                where = placement(path, **kw)
        except Exception as exc:
            raise rejected(exc) from exc
        ops = ", ".join(f"{k} x{v}" for k, v in where["cpu_ops"].items()) or _first_line(first)[:200]
        raise BuildError(
            f"disable_cpu_fallback: {where['cpu_nodes']} node(s) would fall back to CPU "
            f"instead of QNN HTP ({ops})",
            stage="compile",
        ) from first

    def runner(self, artifact: Artifact, cfg: QnnConfig) -> Runner | Unavailable:
        ok, why = self.available()
        if not ok:
            return Unavailable(why)
        from vopt.runtimes.qnn import runner

        return runner(
            _onnx_file(artifact),
            disable_cpu_fallback=cfg.disable_cpu_fallback,
            soc_model=cfg.soc_model,
            htp_arch=cfg.htp_arch,
            htp=htp_options(cfg),
        )

    def check_runner(self, path: Path, settings: dict[str, Any]) -> Runner | Unavailable | None:
        """The quantize check runs the QDQ model on the QNN EP's HTP backend (the x86 simulator here), as
        the artifact will run: ONNX Runtime's CPU EP computes Q/DQ in float, and measured agreement 1.000
        where the simulator gave 0.938. A graph the HTP rejects is diagnosed here as at compile (the check
        is the first to load it): the nodes that cause it, bisected, and the exclusion that builds."""
        from vopt.runtimes.diagnose import log_path, native_output_to, rejected_graph_error
        from vopt.runtimes.qnn import session

        cfg = self.Config(**settings)
        log = log_path("qnn-quantize-check")  # the QNN libraries' own lines, as at compile
        try:
            with native_output_to(log):
                return self.runner(Artifact(path=str(path), format="onnx"), cfg)
        except Exception as exc:
            htp = htp_options(cfg)
            loads = lambda p: session(p, soc_model=cfg.soc_model, htp_arch=cfg.htp_arch, htp=htp)  # noqa: E731
            raise rejected_graph_error(
                "QNN HTP", path, exc, loads, stage="quantize", log=log, workdir=Path(path).parent
            ) from exc


def _first_line(exc: Exception) -> str:
    return first_line(exc)


def _onnx_file(artifact: Artifact) -> str:
    from pathlib import Path

    p = Path(artifact.path)
    if p.is_dir():
        return str(next(iter(sorted(p.glob("*_ctx.onnx")) or sorted(p.glob("*.onnx")))))
    return str(p)


def qdq_summary(proto) -> dict:
    """Counts of Q/DQ nodes and the activation types they quantize to."""
    import onnx

    inits = {i.name: i for i in proto.graph.initializer}
    q = [n for n in proto.graph.node if n.op_type == "QuantizeLinear"]
    dq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"]
    act_types = set()
    for n in q:
        if len(n.input) > 2 and n.input[2] in inits:
            act_types.add(onnx.helper.tensor_dtype_to_np_dtype(inits[n.input[2]].data_type).name)
    return {"quantize_nodes": len(q), "dequantize_nodes": len(dq), "activation_types": sorted(act_types)}


def _fix_dynamic_dims(proto, shape: list[int]) -> list[str]:
    """Pin symbolic input dims to the recipe's example shape (HTP compiles static graphs)."""
    fixed = []
    # Inputs: every dim; outputs: the batch only.
    values = [(v, len(shape)) for v in proto.graph.input] + [(v, 1) for v in proto.graph.output]
    for value, upto in values:
        for i, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.dim_param and i < upto:
                fixed.append(f"{value.name}[{i}]={dim.dim_param}->{shape[i]}")
                dim.ClearField("dim_param")
                dim.dim_value = shape[i]
    return fixed
