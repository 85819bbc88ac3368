"""ONNX Runtime static QDQ quantization: cpu (u8 activations, s8 per-channel weights) and tensorrt
(symmetric s8 everywhere). Calibration ranges are computed once, streamed, and cached in a file, so
the fallback loop re-quantizes without re-calibrating."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from vopt.errors import first_line
from vopt.quant.schemes.base import (
    QuantTypes,
    RankingOptions,
    Scheme,
    match_nodes,
    onnx_node_names,
    quiet_logs,
)

if TYPE_CHECKING:
    from vopt.quant.calibration import CalibrationSet

QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
# Calibrators hold every output of one collect_data call: feed them this many batches at a time.
CHUNK_BATCHES = 4
# On a CPU without VNNI, uint8 weights on the GEMM layers by default (OrtQdqScheme.u8_weights).
U8_BY_DEFAULT = True
# ort-qdq and trt-qdq correct biases for weight rounding (vopt/quant/bias_correction.py) unless a recipe
# turns it off: on EfficientNet-Lite0/1/2 it raised centered cosine on held-out photos on all three
# (docs/benchmarks.md)
BIAS_CORRECTION_BY_DEFAULT = True
# Calibration samples that measure the layers' mean inputs for bias correction: one fp32 pass over them (20 s
# for ViT-B/16 at 64 on the 2-vCPU EPYC). 16 gave EfficientNet-Lite0/1/2 the centered cosines of 64 to the
# fourth decimal (docs/benchmarks.md).
BIAS_CORRECTION_SAMPLES = 16


def quant_type(name: str) -> Any:
    from onnxruntime.quantization import QuantType

    return {
        "uint8": QuantType.QUInt8,
        "int8": QuantType.QInt8,
        "uint16": QuantType.QUInt16,
        "int16": QuantType.QInt16,
    }[name]


def calib_method(name: str) -> Any:
    from onnxruntime.quantization import CalibrationMethod

    return {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[name]


def static_batch_of(path: Path) -> int | None:
    import onnx

    dim = onnx.load(str(path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim[0]
    return int(dim.dim_value) if dim.dim_value > 0 else None  # -1 (PaddlePaddle) is open


def fix_static_shapes(
    src: Path, dst: Path, input_shape: list[int], shapes: dict[str, list[int | None]] | None = None
) -> list[str]:
    """Pin symbolic input dims to the recipe's shape (ORT's int8 kernels are much faster on static shapes):
    the first input's, or with `shapes` (a pipeline component's inputs, from its recorded feeds) each named
    input's, where its size is known (None: the dim stays open)."""
    import onnx
    from onnxruntime.tools.onnx_model_utils import fix_output_shapes, make_dim_param_fixed

    model = onnx.load(str(src))
    fixed: list[str] = []
    wanted: list[tuple[Any, list[int | None]]] = (
        [(i, shapes[i.name]) for i in model.graph.input if i.name in shapes]
        if shapes is not None
        else [(i, list(input_shape)) for i in model.graph.input[:1]]
    )
    # A name shared by dims of different sizes (paddle2onnx writes `?` for both H and W) cannot be pinned by
    # name: pin those dims in place, like a size of 0 or less (`dim_value: -1`), which is open.
    sizes: dict[str, set[int | None]] = {}
    for inp, shape in wanted:
        for dim, size in zip(inp.type.tensor_type.shape.dim, shape, strict=False):
            if dim.dim_param:
                sizes.setdefault(dim.dim_param, set()).add(size)
    for inp, shape in wanted:
        for i, (dim, size) in enumerate(zip(inp.type.tensor_type.shape.dim, shape, strict=False)):
            if size is None:
                continue
            if dim.dim_param and sizes[dim.dim_param] == {size}:
                fixed.append(f"{dim.dim_param}={size}")
                make_dim_param_fixed(model.graph, dim.dim_param, int(size))
            elif dim.dim_param or dim.dim_value <= 0:
                where = f"dim {i}" if shapes is None else f"{inp.name} dim {i}"
                fixed.append(f"{dim.dim_param or dim.dim_value} ({where})={size}")
                dim.dim_value = int(size)  # clears dim_param (a oneof)
    if fixed:
        fix_output_shapes(model)
    onnx.save(model, str(dst))
    return fixed


class QdqOptions(RankingOptions):
    static_shapes: bool = Field(
        default=True, description="Pin free input dims to the recipe's input shape first."
    )


class Int16IslandOptions(QdqOptions):
    """Options of the QDQ schemes that can keep single layers quantized with 16-bit activations."""

    int16_nodes: list[str] = Field(
        default_factory=list,
        description="Nodes kept quantized with 16-bit activations (what fallback_to: int16 writes).",
    )


class OrtQdqOptions(Int16IslandOptions):
    reduce_range: bool | None = Field(
        default=None,
        description="7-bit weights, so the u8 x s8 CPU kernels of ONNX Runtime and OpenVINO cannot saturate "
        "on x86 CPUs without VNNI. Unset: on when this machine lacks VNNI and the target runs such kernels "
        "(openvino; cpu when u8_weights is off).",
    )
    full_range_depthwise: bool = Field(
        default=True,
        description="Under reduce_range, keep 8-bit weights on depthwise convs: ORT runs them with 32-bit "
        "sums, which cannot saturate. Only the layers that go through its 16-bit GEMM sums get 7 bits.",
    )
    u8_weights: bool | None = Field(
        default=None,
        description="uint8 weights (symmetric, zero point 128) on the layers that go through ORT's int8 GEMM "
        "(pointwise and dense convs, MatMul, Gemm), so they run on its U8U8 kernels, which cannot saturate "
        "(ONNX Runtime's quantization docs), with all 8 bits; depthwise convs keep s8 weights. Slower than "
        "the u8 x s8 kernels with 7-bit weights, and more accurate. Unset: on when the target runs ORT's "
        "CPU kernels, this machine lacks VNNI and reduce_range is not set.",
    )
    bias_correction: bool = Field(
        default=BIAS_CORRECTION_BY_DEFAULT,
        description="Subtract from each int8 Conv and Gemm bias the mean output shift its rounded weights "
        "add (measured on up to 16 calibration samples; ONNX Runtime's quantizer has no such step, NNCF's "
        "fast bias correction is the same idea).",
    )


@functools.cache  # the CPU does not change within a process; the fallback loop asks on every round
def host_lacks_vnni() -> bool:
    """An x86 CPU whose flags show no VNNI (avx512_vnni, avx_vnni or amx_int8): ORT's u8s8 kernels then use
    16-bit intermediate sums, which saturate. Measured on an AMD EPYC without VNNI: QDQ worst-image cosine
    0.99 as written, 0.94 (u8 activations) and 0.62 (s8) through ORT's fused kernels; 0.985 with 7-bit
    weights."""
    import platform

    if platform.machine().lower() not in ("x86_64", "amd64", "i686", "x86"):
        return False
    try:
        flags = next(
            (line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")), ""
        ).split()
    except OSError:
        return False  # not Linux: no evidence either way, keep full-range weights
    return bool(flags) and not {"avx512_vnni", "avx_vnni", "amx_int8"} & set(flags)


def gemm_weights(model: Path) -> dict[str, int]:
    """Weight initializers of the layers ORT runs through its int8 GEMM, whose u8 x s8 sums saturate without
    VNNI: every Conv but the depthwise ones, MatMul and Gemm with a constant weight. Each with the channel
    axis ORT's quantizer gives it per channel (a per-channel override must name it)."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    inits = {i.name for i in graph.initializer}
    depthwise = set(depthwise_weights(model))
    found: dict[str, int] = {}
    for node in graph.node:
        if len(node.input) < 2 or node.input[1] not in inits or node.input[1] in depthwise:
            continue
        if node.op_type == "Conv":
            found[node.input[1]] = 0
        elif node.op_type == "MatMul":
            found[node.input[1]] = 1
        elif node.op_type == "Gemm":
            trans_b = next((a.i for a in node.attribute if a.name == "transB"), 0)
            found[node.input[1]] = 0 if trans_b else 1
    return found


def u8_weight_overrides(model: Path, per_channel: bool) -> dict[str, list[dict[str, Any]]]:
    """ORT TensorQuantOverrides that give the GEMM layers' weights uint8, symmetric (zero point 128, the same
    in every channel, as QLinearConv needs): ORT then runs them on its U8U8 kernels, which widen both operands
    to 16 bits before multiplying, so nothing saturates without VNNI."""
    qtype = quant_type("uint8")
    return {
        w: [{"quant_type": qtype, "symmetric": True, **({"axis": axis} if per_channel else {})}]
        for w, axis in gemm_weights(model).items()
    }


def depthwise_weights(model: Path) -> list[str]:
    """Weight initializers of the depthwise convs (one input and one output channel per group). ORT's
    QLinearConv runs those through MlasConvDepthwise, whose sums are 32-bit on every x86 CPU, and every other
    conv, MatMul and Gemm through its GEMM, whose u8 x s8 pairs sum to 16 bits without VNNI."""
    import onnx

    graph = onnx.load(str(model), load_external_data=False).graph
    shapes = {i.name: list(i.dims) for i in graph.initializer}
    found = []
    for node in graph.node:
        if node.op_type != "Conv" or len(node.input) < 2 or node.input[1] not in shapes:
            continue
        group = next((a.i for a in node.attribute if a.name == "group"), 1)
        dims = shapes[node.input[1]]
        if group > 1 and len(dims) >= 2 and dims[0] == group and dims[1] == 1:
            found.append(node.input[1])
    return found


# Ops whose output size depends on the data: their tensors differ in size from batch to batch.
DATA_DEPENDENT_SHAPES = ("NonMaxSuppression", "NonZero", "Unique")


class OrtQdqScheme(Scheme):
    name = "ort-qdq"
    precisions = ("int8", "int16")
    # u8 activations: s8 activations run about 4x slower on x86 (FIELD-NOTES).
    types = {"int8": QuantTypes("uint8", "int8"), "int16": QuantTypes("uint16", "int8")}
    ranks_layers = True
    fallback_precisions = ("float", "int16")
    qdq_output = True
    Options = OrtQdqOptions
    # `vopt tune`: uint8 weights on the GEMM layers (U8U8 kernels: 8-bit and no saturation, slower) against
    # s8 weights (7-bit on a CPU without VNNI: u8 x s8 kernels), and min-max vs percentile ranges. Activations
    # stay u8 (s8 activations ran about 4x slower on x86, FIELD-NOTES); per-tensor weights ran no faster
    # than per-channel (72 against 71 img/s, ResNet-50) and lost 6 points top-1 on EfficientNet-Lite0.
    tune_space = (
        ({"quantize.options.u8_weights": True}, {"quantize.options.u8_weights": False}),
        ({"quantize.calibration.method": "minmax"}, {"quantize.calibration.method": "percentile"}),
    )
    # quantize.search tries uint8 GEMM weights where the build does not use them already (`applies`): all 8
    # bits where 7-bit weights lose too much, on kernels that cannot saturate.
    search_settings: ClassVar[tuple[dict[str, Any], ...]] = ({"u8_weights": True},)
    symmetric: ClassVar[bool] = False
    # None = every op ORT's QDQ quantizer knows.
    op_types: ClassVar[list[str] | None] = None

    def prepare(self, src: Path) -> Path:
        from onnxruntime.quantization import quant_pre_process

        from vopt.quant.opset import upgrade_opset

        model = src
        upgraded = upgrade_opset(
            src, self.work / "float_opset.onnx"
        )  # Q/DQ per-channel `axis` needs opset 13
        if upgraded:
            self.info["opset_upgrade"] = f"{upgraded[0]} -> {upgraded[1]} (onnx.version_converter)"
            self.warnings.append(
                f"the model is opset {upgraded[0]}; upgraded to {upgraded[1]} for QDQ "
                "(per-channel DequantizeLinear needs opset 13)"
            )
            src = model = self.work / "float_opset.onnx"
        if self.options.static_shapes:
            static = self.work / "float_static.onnx"
            fixed = fix_static_shapes(src, static, self.cfg.input_shape, self.cfg.input_shapes)
            if fixed:
                self.info["fixed_dims"] = fixed
            model = static
        out = self.work / "float_pre.onnx"
        try:
            quant_pre_process(str(model), str(out))
            self.info["pre_process"] = "quant_pre_process (symbolic shapes + ORT basic optimizations)"
        except Exception as exc:  # symbolic shape inference fails on some graphs: retry without it
            self.warnings.append(
                f"quant_pre_process failed ({first_line(exc, limit=120, with_type=True)}); "
                "retried without symbolic shapes"
            )
            quant_pre_process(str(model), str(out), skip_symbolic_shape=True)
            self.info["pre_process"] = "quant_pre_process (ONNX shapes + ORT basic optimizations)"
        return out

    # -- calibration --------------------------------------------------------------------------
    def calib_options(self) -> dict[str, Any]:
        opts: dict[str, Any] = {"symmetric": self.symmetric}
        if self.cfg.calibration.method == "percentile":
            opts["percentile"] = self.cfg.calibration.percentile
        return opts

    def calibrate(self, model: Path, calib: CalibrationSet, advance: Callable[[int], None]) -> int:
        import onnx
        from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

        from vopt.quant.calibration import OrtReader, chunked_reader

        graph = onnx.load(str(model), load_external_data=False).graph
        input_name = graph.input[0].name
        reader = OrtReader(calib, input_name, static_batch_of(model), advance)
        calibrator = create_calibrator(
            model,
            self.op_types,
            augmented_model_path=str(self.work / "augmented.onnx"),
            calibrate_method=calib_method(self.cfg.calibration.method),
            extra_options=self.calib_options(),
        )
        # One collect_data call per chunk: each call reduces its outputs to ranges or histograms and merges
        # them, so memory is bounded by the chunk. (ORT's own max_intermediate_outputs drops data in 1.32.)
        # Histogram methods stack each tensor's values across a call's batches: a tensor whose size depends on
        # the data (the rows NonMaxSuppression selects) cannot stack, so such a model takes one batch per
        # call. Only such a model: each later call re-bins the histogram that the first call's range fixed,
        # which cost entropy calibration of a ResNet its accuracy (centered cosine 0.85, 0.99 in chunks).
        histogram = self.cfg.calibration.method in ("percentile", "entropy")
        ragged = any(n.op_type in DATA_DEPENDENT_SHAPES for n in graph.node)
        for part in chunked_reader(reader, 1 if histogram and ragged else CHUNK_BATCHES):
            calibrator.collect_data(part)
        seen = reader.seen
        ranges = calibrator.compute_data()
        del calibrator
        (self.work / "augmented.onnx").unlink(missing_ok=True)
        save_tensors_data(ranges, self.ranges_file)
        if getattr(self.options, "bias_correction", False) and getattr(self, "_bias_model", None) != model:
            from vopt.quant.bias_correction import BiasCorrector, correctable_layers, input_means

            feeds = OrtReader(calib, input_name, static_batch_of(model), limit=BIAS_CORRECTION_SAMPLES)
            self._bias_corrector = BiasCorrector(model, input_means(model, feeds, correctable_layers(model)))
            self._bias_model = model  # the search calibrates once per range method: the means stay
        return seen

    @property
    def ranges_file(self) -> Path:
        return self.work / "calibration_ranges.json"

    def saved_calibration(self) -> Path | None:
        import shutil

        if not self.ranges_file.exists():  # not calibrated yet
            return None
        self._saved = getattr(self, "_saved", 0) + 1
        saved = self.work / f"calibration_ranges_{self._saved}.json"
        shutil.copyfile(self.ranges_file, saved)
        return saved

    def restore_calibration(self, saved: Any) -> None:
        import shutil

        if saved is not None:
            shutil.copyfile(saved, self.ranges_file)

    # -- quantization -------------------------------------------------------------------------
    def extra_options(self) -> dict[str, Any]:
        return {}

    def exclusions(self, model: Path, exclude_nodes: list[str]) -> list[str]:
        names = onnx_node_names(model)
        return sorted(set(match_nodes(names, self.excluded_globs())) | set(exclude_nodes))

    def applies(self, setting: dict[str, Any]) -> bool:
        if "u8_weights" in setting:  # only where it changes the weights this build gives the GEMM layers
            from vopt.registry import get_target

            if (self.cfg.weight_type or "int8") != "int8" or not get_target(self.cfg.target).ort_cpu_int8:
                return False  # uint8 weights already, or a runtime other than ORT's CPU kernels
            return bool(setting["u8_weights"]) != self.u8_weights()
        return True

    @classmethod
    def host_facts(cls, options: dict[str, Any], target: Any) -> dict[str, Any]:
        # reduce_range and u8_weights default by the host; a recipe that sets either chose for itself
        pinned = options.get("reduce_range") is not None or options.get("u8_weights") is not None
        if pinned or not target.x86_int8_saturates:
            return {}
        return {"int8_saturates": host_lacks_vnni()}

    def u8_weights(self) -> bool:
        chosen = getattr(self.options, "u8_weights", None)
        if chosen is not None:
            return chosen
        if getattr(self.options, "reduce_range", None) is not None:
            return False  # the recipe chose 7- or 8-bit s8 weights
        from vopt.registry import get_target

        if not get_target(self.cfg.target).ort_cpu_int8:
            return False  # OpenVINO's CPU plugin runs uint8-weight convs in f32 (half the speed)
        return bool(self.cfg.host.get("int8_saturates")) and U8_BY_DEFAULT

    def reduce_range(self) -> bool:
        chosen = getattr(self.options, "reduce_range", None)
        if chosen is not None:
            return chosen
        if self.u8_weights():  # the GEMM layers cannot saturate: no layer needs 7 bits
            return False
        return bool(self.cfg.host.get("int8_saturates"))  # host_facts: targets whose kernels saturate

    def quantize(
        self, model: Path, exclude_nodes: list[str], out: Path, int16_nodes: list[str] | None = None
    ) -> Path:
        from onnxruntime.quantization import QuantFormat, quantize_static

        op_types = self.op_types_to_quantize(model)
        extra = self.extra_options()
        wide, exclude_nodes = self.int16_split(exclude_nodes, int16_nodes)
        overrides = self.int16_overrides(model, wide) if wide else {}
        if wide:
            extra = {**extra, "UseQDQContribOps": True}
        # set on every call: the search changes the options between calls
        reduce = self.info["reduce_range"] = self.reduce_range()
        for key in ("full_range_weights", "u8_weights"):
            self.info.pop(key, None)
        if reduce and getattr(self.options, "full_range_depthwise", False):
            full = depthwise_weights(model)
            self.info["full_range_weights"] = f"{len(full)} depthwise convs (32-bit sums: no saturation)"
            axis = {"axis": 0} if self.cfg.per_channel else {}
            overrides.update({w: [{"reduce_range": False, **axis}] for w in full})
        if self.u8_weights() and (self.cfg.weight_type or "int8") == "int8":
            u8 = u8_weight_overrides(model, self.cfg.per_channel)
            self.info["u8_weights"] = (
                f"{len(u8)} GEMM layers (pointwise and dense convs, MatMul, Gemm): uint8 weights, ORT's U8U8 "
                "kernels (no saturation); depthwise convs keep int8"
            )
            overrides.update(u8)
        if overrides:
            extra = {**extra, "TensorQuantOverrides": overrides}
        with quiet_logs():
            quantize_static(
                str(model),
                str(out),
                None,  # ranges come from the calibration file
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=op_types,
                per_channel=self.cfg.per_channel,
                reduce_range=reduce,
                activation_type=quant_type(self.cfg.activation_type or "uint8"),
                weight_type=quant_type(self.cfg.weight_type or "int8"),
                nodes_to_exclude=self.exclusions(model, exclude_nodes),
                calibrate_method=calib_method(self.cfg.calibration.method),
                extra_options=extra,
                calibration_cache_path=str(self.ranges_file),
            )
        self.info.pop("bias_correction", None)
        corrector = getattr(self, "_bias_corrector", None)
        if getattr(self.options, "bias_correction", False) and corrector is not None:
            done = corrector.apply(out)
            self.info["bias_correction"] = (
                f"{done['layers']} Conv/Gemm biases corrected for weight rounding (largest shift "
                f"{done['largest_shift_units']} bias units), mean inputs from up to "
                f"{BIAS_CORRECTION_SAMPLES} calibration samples"
            )
        return out

    def int16_split(
        self, exclude_nodes: list[str], int16_nodes: list[str] | None
    ) -> tuple[list[str], list[str]]:
        """(16-bit nodes, float nodes). options.fallback_to: int16 keeps the fallback's layers quantized,
        with 16-bit activations; the search passes its int16 layers next to its float ones."""
        wide = sorted({*getattr(self.options, "int16_nodes", []), *(int16_nodes or [])})
        if self.options.fallback_to == "int16":
            return sorted({*wide, *exclude_nodes}), []
        return wide, exclude_nodes

    def int16_overrides(self, model: Path, nodes: list[str]) -> dict[str, list[dict[str, Any]]]:
        """16-bit activations on the inputs and outputs of these nodes (weights stay 8-bit)."""
        import onnx

        graph = onnx.load(str(model), load_external_data=False).graph
        inits = {i.name for i in graph.initializer}
        qtype = quant_type("int16" if self.symmetric else "uint16")
        tensors = sorted(
            {
                t
                for n in graph.node
                if n.name in set(nodes)
                for t in [*n.input, *n.output]
                if t and t not in inits
            }
        )
        return {t: [{"quant_type": qtype}] for t in tensors}

    def op_types_to_quantize(self, model: Path) -> list[str] | None:
        excluded = set(self.excluded_ops())
        if not excluded and self.op_types is None:
            return None
        if self.op_types is not None:
            return [t for t in self.op_types if t not in excluded]
        import onnx

        present = {n.op_type for n in onnx.load(str(model), load_external_data=False).graph.node}
        return sorted(present - excluded)

    def candidates(self, quantized: Path) -> list[str]:
        """Non-Q/DQ nodes that read a dequantized tensor: the layers running in integer arithmetic."""
        import onnx

        graph = onnx.load(str(quantized), load_external_data=False).graph
        dq_out = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
        return [
            n.name
            for n in graph.node
            if n.op_type not in QDQ_OPS and n.name and any(i in dq_out for i in n.input)
        ]


class TensorRtQdqScheme(OrtQdqScheme):
    """Symmetric s8 activations and per-channel s8 weights, Q/DQ only around the ops TensorRT runs in int8."""

    name = "trt-qdq"
    precisions = ("int8",)
    types = {"int8": QuantTypes("int8", "int8")}
    symmetric = True
    op_types = [
        "Conv",
        "ConvTranspose",
        "Gemm",
        "MatMul",
        "Add",
        "MaxPool",
        "AveragePool",
        "GlobalAveragePool",
        "Concat",
    ]

    # TensorRT runs symmetric s8 weights only: no uint8 weights to tune or search
    tune_space = (
        ({"quantize.per_channel": True}, {"quantize.per_channel": False}),
        ({"quantize.calibration.method": "minmax"}, {"quantize.calibration.method": "percentile"}),
    )
    search_settings = ()

    def extra_options(self) -> dict[str, Any]:
        return {"ActivationSymmetric": True, "WeightSymmetric": True}
