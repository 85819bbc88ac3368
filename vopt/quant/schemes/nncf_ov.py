"""openvino: NNCF post-training quantization of the OpenVINO model (ModelType.TRANSFORMER for transformer
families). The output is an OpenVINO IR directory (model.xml + model.bin)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field

from vopt.errors import missing_extra
from vopt.quant.schemes.base import RankingOptions, Scheme, quiet_logs
from vopt.runtimes.openvino_names import onnx_layer, onnx_producers

if TYPE_CHECKING:
    from vopt.quant.calibration import CalibrationSet

# ONNX op type -> OpenVINO op type, for `exclude.op_types`.
OV_TYPES = {
    "Conv": "Convolution",
    "Gemm": "MatMul",
    "Add": "Add",
    "MatMul": "MatMul",
    "Softmax": "Softmax",
    "ConvTranspose": "ConvolutionBackpropData",
    "AveragePool": "AvgPool",
    "MaxPool": "MaxPool",
    # normalizations become MVN (mean-variance normalization) and its scale and shift
    "InstanceNormalization": "MVN",
    "LayerNormalization": "MVN",
    "GroupNormalization": "GroupNormalization",
}


class _Items:
    """A re-iterable dataset: NNCF may walk it more than once."""

    def __init__(self, calib: CalibrationSet, static_batch: int | None, advance: Callable[[int], None]):
        self.calib, self.static_batch, self.advance = calib, static_batch, advance

    def __iter__(self) -> Iterator[Any]:
        from vopt.quant.calibration import split_static

        for b in split_static(self.calib.batches(), self.static_batch or 1):
            self.advance(1 if isinstance(b, dict) else len(b))  # a pipeline component's call: named inputs
            yield b


class NncfOptions(RankingOptions):
    mode: Literal["full", "weights", "hybrid"] = Field(
        default="full",
        description="full: nncf.quantize (weights and activations int8). weights: nncf.compress_weights "
        "INT8_ASYM, weights only, activations float, no calibration (optimum-intel's --weight-format int8). "
        "hybrid: optimum-intel's default for diffusion UNets: the linear layers' weights int8 (weights "
        "only), everything else (convolutions, attention's activation MatMuls) full int8, SmoothQuant off.",
    )
    static_shapes: bool = Field(
        default=True, description="For the ORT QDQ proxy the fallback ranks layers on."
    )
    preset: Literal["performance", "mixed"] | None = Field(
        default=None,
        description="NNCF preset; the family's when it declares one (yolo: mixed), else mixed for "
        "transformer families and performance otherwise.",
    )
    bias_correction: Literal["fast", "full"] = Field(
        default="fast", description="NNCF's fast BiasCorrection (its default) or the full one."
    )
    smooth_quant: Annotated[float, Field(ge=0, le=1)] | Literal["off"] | None = Field(
        default=None,
        description="SmoothQuant's alpha for the MatMuls of transformer families, where NNCF applies it (its "
        "default 0.95); 'off' turns it off. Other families have no SmoothQuant step.",
    )
    matmuls: Literal["int8", "float"] = Field(
        default="int8",
        description="float keeps every MatMul (OpenVINO's FullyConnected) out of int8: on x86 CPUs without "
        "VNNI the plugin's int8 FullyConnected ran slower than f32 (ViT-B/16 on an AMD EPYC: 460 against 300 "
        "ms), while its int8 convolutions ran faster. `vopt tune` tries both.",
    )
    overflow_fix: Literal["enable", "first_layer", "disable"] | None = Field(
        default=None,
        description="NNCF's 7-bit weights against the saturating u8 x s8 products of x86 CPUs without VNNI "
        "(all layers, the first only: NNCF's default, or none). Unset: enable on such a CPU, else NNCF's "
        "default.",
    )


class NncfScheme(Scheme):
    name = "nncf"
    # `vopt tune`: NNCF's 7-bit weights in every layer or the first only (a CPU without VNNI saturates the
    # rest; one with VNNI loses a bit of precision), its range estimators, and MatMuls in int8 or float
    # (OpenVINO's int8 FullyConnected is slower than f32 without VNNI). Each is a trade of speed against
    # held-out fidelity, which `vopt tune` weighs; NNCF's presets changed neither speed nor the winner.
    tune_space = (
        ({"quantize.options.overflow_fix": "enable"}, {"quantize.options.overflow_fix": "first_layer"}),
        ({"quantize.calibration.method": "minmax"}, {"quantize.calibration.method": "percentile"}),
        ({"quantize.options.matmuls": "int8"}, {"quantize.options.matmuls": "float"}),
    )
    output_format = "openvino-ir"
    requires = (("openvino", "openvino", "openvino"), ("nncf", "nncf", "openvino"))
    ranks_layers = True
    fallback_precisions = ("float",)
    Options = NncfOptions
    tools = ("openvino", "nncf")
    # quantize.search tries these besides the range methods (SmoothQuant only where it applies, an
    # overflow_fix only where it is not the default already: `applies`). The check runs the IR on this
    # machine's int8 kernels, so it sees what saturation costs each overflow_fix.
    search_settings = (
        {"bias_correction": "full"},
        {"smooth_quant": 0.5},
        {"overflow_fix": "enable"},
        {"overflow_fix": "disable"},
    )

    @classmethod
    def host_facts(cls, options: dict[str, Any], target: Any) -> dict[str, Any]:
        from vopt.quant.schemes.ort_qdq import host_lacks_vnni

        return {} if options.get("overflow_fix") is not None else {"int8_saturates": host_lacks_vnni()}

    def applies(self, setting: dict[str, Any]) -> bool:
        if "overflow_fix" in setting and setting["overflow_fix"] == self.overflow_fix():
            return False  # what this build already does (the default resolved on this machine)
        return "smooth_quant" not in setting or self._transformer()

    def layers_follow(self, setting: dict[str, Any]) -> bool:
        """Full bias correction is kept only when it holds the gate alone: its float layers cannot be reverted
        (`reverts`), so each layer trial is a whole nncf.quantize (11 s on EfficientNet-Lite0, against about
        1 s). There, too, the layers went further with fast correction: 0.998 held with 32 layers in float,
        where full correction needed 38 (AMD EPYC, 150 check photos)."""
        return self.reverts(setting)

    def _transformer(self) -> bool:
        return bool(getattr(self.family, "is_transformer", False))

    def prepare(self, src: Path) -> Path:
        return src

    def calibrate(self, model: Path, calib: CalibrationSet, advance: Callable[[int], None]) -> int:
        self._calib, self._advance = calib, advance  # NNCF calibrates and quantizes in one call
        if self.options.mode == "weights":  # weight compression reads no data
            return 0
        return calib.count()

    def output_name(self) -> str:
        return "model"

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        """Float layers by name (the fallback's, the search's, exact names in `exclude.nodes`) are reverted
        on one quantized model (vopt.quant.schemes.nncf_revert); op types and patterns go to NNCF's
        IgnoredScope."""
        try:
            import nncf  # noqa: F401
            import openvino as ov
        except ImportError as exc:
            raise missing_extra("nncf", "openvino", "the openvino quantization scheme") from exc

        floats = sorted({*exclude_nodes, *(g for g in self.cfg.exclude.nodes if not _is_pattern(g))})
        for key in ("reverted_ops", "float_layers", "ignored_ops"):  # the previous call's
            self.info.pop(key, None)
        self.info["mode"] = self.options.mode
        if self.options.mode != "full":
            quantized = self._weights_or_hybrid(self._ov_model(model), floats)
        elif floats and self.reverts():
            quantized, reverted = self._reverter(model).revert(floats)
            self.info["reverted_ops"] = reverted
            self.info["float_layers"] = "reverted on one quantized model, as NNCF accuracy control does"
        else:
            quantized = self._quantize(self._ov_model(model), compress_weights=True, floats=floats)
        out.mkdir(parents=True, exist_ok=True)
        ov.save_model(quantized, str(out / "model.xml"), compress_to_fp16=False)
        fq = sum(1 for op in quantized.get_ops() if op.get_type_name() == "FakeQuantize")
        self.info.update(
            matmuls=self.options.matmuls,
            model_type="TRANSFORMER" if self._transformer() else "default",
            fake_quantize_ops=fq,
            subset_size=self._calib.count() if self.options.mode != "weights" else 0,
        )
        return out

    def _weights_or_hybrid(self, ov_model, floats: list[str]):
        """mode weights: nncf.compress_weights (INT8_ASYM) on every layer with weights. mode hybrid, as
        optimum-intel quantizes diffusion UNets (`_hybrid_quantization`): the weights of the MatMuls with a
        constant input (the linear layers: attention projections, feed-forward) compressed to int8, then
        nncf.quantize (ModelType.TRANSFORMER, SmoothQuant off) on the rest with those layers ignored, so the
        convolutions and attention's activation MatMuls run full int8. The family's and the recipe's float
        layers are ignored by both."""
        import nncf

        ignored = self._ignored_scope(ov_model, floats)
        names = list(ignored.names) if ignored is not None else []
        types = list(ignored.types) if ignored is not None else []
        patterns = list(ignored.patterns) if ignored is not None else []
        with quiet_logs():
            if self.options.mode == "weights":
                scope = nncf.IgnoredScope(names=names, types=types, patterns=patterns, validate=False)
                compressed = nncf.compress_weights(
                    ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=scope
                )
                self.info["weights"] = "nncf.compress_weights INT8_ASYM (weights only; activations float)"
                return compressed
            linear = linear_layers(ov_model)
            scope = nncf.IgnoredScope(
                names=names, types=[*types, "Convolution"], patterns=patterns, validate=False
            )
            compressed = nncf.compress_weights(
                ov_model, mode=nncf.CompressWeightsMode.INT8_ASYM, ignored_scope=scope
            )
            from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

            advanced = self._advanced(True)
            advanced.smooth_quant_alphas = AdvancedSmoothQuantParameters(matmul=-1)
            self.info["smooth_quant"] = "off (hybrid)"
            quantized = nncf.quantize(
                compressed,
                nncf.Dataset(_Items(self._calib, self.cfg.input_shape[0], self._advance)),
                subset_size=self._calib.count(),
                model_type=nncf.ModelType.TRANSFORMER,
                preset=self._preset(True),
                fast_bias_correction=self.options.bias_correction == "fast",
                advanced_parameters=advanced,
                ignored_scope=nncf.IgnoredScope(
                    names=sorted({*names, *linear}), types=types, patterns=patterns, validate=False
                ),
            )
        self.info["hybrid"] = (
            f"{len(linear)} linear layers with int8 weights only (nncf.compress_weights INT8_ASYM); "
            "the rest full int8 (nncf.quantize, ModelType.TRANSFORMER)"
        )
        return quantized

    def _ov_model(self, model: Path):
        import openvino as ov

        ov_model = ov.convert_model(str(model))
        self._producers = onnx_producers(model)
        shape = self.cfg.input_shape
        if self.cfg.input_shapes is not None:  # a pipeline component: each input as its recorded feeds fix it
            ov_model.reshape(
                {
                    port.get_any_name(): ov.PartialShape([-1 if d is None else d for d in dims])
                    for port in ov_model.inputs
                    if (dims := self.cfg.input_shapes.get(port.get_any_name())) is not None
                }
            )
        elif ov_model.inputs[0].get_partial_shape().is_dynamic:
            ov_model.reshape(
                {ov_model.inputs[0].get_any_name(): shape}
            )  # static shapes: what NNCF and the CPU plugin like
        return ov_model

    def reverts(self, setting: dict[str, Any] | None = None) -> bool:
        """Whether float layers are reverted on one quantized model (with `setting` applied to the options).
        Not with full bias correction: it
        corrects each layer for the error of the int8 layers before it, which a revert to float removes. On
        EfficientNet-Lite0, 45 layers reverted from a fully corrected model gave a centered cosine of 0.99679,
        where the same 45 in an IgnoredScope gave 0.99818. Fast bias correction corrects each layer for its
        own error only: there the two measured the same."""
        settings = {**self.options.model_dump(), **(setting or {})}
        return settings["bias_correction"] == "fast" and settings["mode"] == "full"

    def _quantize(self, ov_model, compress_weights: bool, floats: list[str] | None = None):
        import nncf

        dataset = nncf.Dataset(_Items(self._calib, self.cfg.input_shape[0], self._advance))
        transformer = self._transformer()
        kwargs = {}
        ignored = self._ignored_scope(ov_model, floats or [])
        if ignored is not None:
            kwargs["ignored_scope"] = ignored
        advanced = self._advanced(transformer)
        if not compress_weights:  # float weights behind each FakeQuantize, which the revert can restore
            from nncf.openvino.quantization.backend_parameters import BackendParameters

            advanced.backend_params[BackendParameters.COMPRESS_WEIGHTS] = False
        with quiet_logs():
            return nncf.quantize(
                ov_model,
                dataset,
                subset_size=self._calib.count(),
                model_type=nncf.ModelType.TRANSFORMER if transformer else None,
                preset=self._preset(transformer),
                fast_bias_correction=self.options.bias_correction == "fast",
                advanced_parameters=advanced,
                **kwargs,
            )

    def _reverter(self, model: Path):
        """The Reverter for the current settings, quantizing once per settings (the latest one is kept)."""
        import json

        from vopt.quant.schemes.nncf_revert import Reverter

        key = json.dumps(
            [
                str(model),
                self.cfg.calibration.method,
                self.options.model_dump(mode="json"),
                self._patterns(),
                self.excluded_ops(),
            ],
            sort_keys=True,
            default=str,
        )
        cached = getattr(self, "_cached_reverter", None)  # (key, reverter, what quantizing reported)
        if cached is None or cached[0] != key:
            initial = self._ov_model(model)  # one conversion: auto-named ops differ between two
            quantized = self._quantize(initial, compress_weights=False)
            reverter = Reverter(initial, quantized, self._producers)
            cached = self._cached_reverter = (key, reverter, dict(self.info))
        self.info.update(cached[2])  # preset, range estimator, ... as quantizing with these settings set them
        return cached[1]

    def _advanced(self, transformer: bool):
        """calibration.method picks NNCF's activation range estimator. NNCF's own default averages per-sample
        min/max, which clips: on a tiny ResNet it gave centered cosine 0.934 where true min/max gave 0.984."""
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
        from nncf.quantization.range_estimator import (
            AggregatorType,
            RangeEstimatorParameters,
            RangeEstimatorParametersSet,
            StatisticsCollectorParameters,
            StatisticsType,
        )

        method = self.cfg.calibration.method
        # percentile: each sample's quantile at the recipe's percentile, the extremes over the samples (as
        # ORT's percentile keeps the calibration set's tails). NNCF's MEAN_QUANTILE averages the per-sample
        # quantiles, which clips every larger-than-average activation: on EfficientNet-Lite0/1/2 it lost 19-25
        # points top-1 on OpenVINO (docs/benchmarks.md).
        outlier = (100.0 - self.cfg.calibration.percentile) / 100.0
        percentile = RangeEstimatorParameters(
            min=StatisticsCollectorParameters(
                StatisticsType.QUANTILE, AggregatorType.MIN, quantile_outlier_prob=outlier
            ),
            max=StatisticsCollectorParameters(
                StatisticsType.QUANTILE, AggregatorType.MAX, quantile_outlier_prob=outlier
            ),
        )
        estimators = {
            "minmax": RangeEstimatorParametersSet.MINMAX,
            "percentile": percentile,
            # NNCF's histogram search is its nearest to entropy
            "entropy": RangeEstimatorParametersSet.HISTOGRAM,
        }
        self.info["calibration_method"] = (
            f"NNCF range estimator for '{method}' + {self.options.bias_correction} bias correction"
        )
        extra = {}
        if transformer:  # NNCF runs SmoothQuant for ModelType.TRANSFORMER only
            # the recipe's, else the family's (a diffusion UNet: 0.15), else NNCF's
            alpha = self.options.smooth_quant
            if alpha is None:
                alpha = getattr(self.family, "smooth_quant_alpha", None)
            if alpha is not None:
                from nncf.quantization.advanced_parameters import AdvancedSmoothQuantParameters

                extra["smooth_quant_alphas"] = AdvancedSmoothQuantParameters(
                    matmul=-1 if alpha == "off" else float(alpha)
                )
            self.info["smooth_quant"] = "off" if alpha == "off" else {"matmul_alpha": alpha or 0.95}
        return AdvancedQuantizationParameters(
            activations_range_estimator_params=estimators[method],
            overflow_fix=self._overflow_fix(),
            **extra,
        )

    def _overflow_fix(self):
        """On an x86 CPU without VNNI the CPU plugin's int8 kernels saturate like ONNX Runtime's: measured on
        EfficientNet-Lite0 (AMD EPYC, 222 held-out photos), NNCF's default (first layer only) kept top-1
        agreement at 0.914, all layers at 0.950, at the same speed."""
        from nncf.quantization.advanced_parameters import OverflowFix

        chosen = self.overflow_fix()
        self.info["overflow_fix"] = chosen
        return OverflowFix({"first_layer": "first_layer_only"}.get(chosen, chosen))

    def overflow_fix(self) -> str:
        """The recipe's, else enable on a CPU whose int8 kernels saturate (host_facts), else NNCF's
        default."""
        saturates = self.cfg.host.get("int8_saturates")
        return self.options.overflow_fix or ("enable" if saturates else "first_layer")

    def _preset(self, transformer: bool):
        import nncf

        family = getattr(self.family, "nncf_preset", None)
        name = (self.options.preset or family or ("mixed" if transformer else "performance")).upper()
        self.info["preset"] = name.lower()
        return nncf.QuantizationPreset[name]

    def rank(
        self, model: Path, quantized: Path, calib: CalibrationSet, samples: int, rank_by: str
    ) -> tuple[list[str], list[dict[str, Any]]]:
        """NNCF's IR has no per-layer Q/DQ to compare, so rank on an ORT QDQ proxy of the same ONNX model
        (u8/s8 per-channel, same calibration data). Layer names are the ONNX node names; they map onto
        OpenVINO ops by friendly name (a Conv with bias becomes '<name>/WithoutBiases' + '<name>')."""
        from vopt.quant.sensitivity import rank_layers

        proxy, float_model = self.qdq_proxy(model, calib)
        qdq = proxy.quantize(float_model, [], proxy.work / "proxy_qdq.onnx")
        candidates = proxy.candidates(qdq)
        table = rank_layers(float_model, qdq, candidates, calib, samples, proxy.work, rank_by=rank_by)
        return candidates, table

    def qdq_proxy(
        self, model: Path, calib: CalibrationSet, advance: Callable[[int], None] | None = None
    ) -> tuple[Scheme, Path]:
        """The ORT QDQ scheme (u8/s8 per-channel) on the same ONNX model and calibration data, calibrated."""
        from vopt.quant.schemes.ort_qdq import OrtQdqScheme
        from vopt.registry import get_target

        proxy_work = self.work / "proxy"
        proxy_work.mkdir(exist_ok=True)
        options = {k: v for k, v in self.cfg.options.items() if k in OrtQdqScheme.Options.model_fields}
        cfg = self.cfg.model_copy(
            update={
                "activation_type": "uint8",
                "weight_type": "int8",
                "per_channel": True,
                "options": options,
                # the proxy's own host facts, not NNCF's: ORT's CPU int8 kernels are not what this target runs
                "host": OrtQdqScheme.host_facts(options, get_target(self.cfg.target)),
            }
        )
        proxy = OrtQdqScheme(cfg, proxy_work, self.family)
        float_model = proxy.prepare(model)
        proxy.calibrate(float_model, calib, advance or (lambda n=1: None))
        self.info["ranking"] = "on an ORT QDQ proxy of the ONNX model (u8/s8 per-channel)"
        return proxy, float_model

    def _patterns(self) -> list[str]:
        """exclude.nodes entries with glob characters and the family's own: NNCF's IgnoredScope takes them."""
        family = getattr(self.family, "quant_exclude_nodes", ())
        return [*(g for g in self.cfg.exclude.nodes if _is_pattern(g)), *family]

    def _ignored_scope(self, ov_model, floats: list[str]):
        import fnmatch
        import re

        import nncf

        types = sorted(
            {OV_TYPES.get(t, t) for t in self.excluded_ops()}
            | ({"MatMul"} if self.options.matmuls == "float" else set())
        )
        names = [op.get_friendly_name() for op in ov_model.get_ops()]
        producers = getattr(self, "_producers", {})
        # OpenVINO names the op that computes a graph output after the output ('boxes'), not after its ONNX
        # node ('/postprocess/Mul_3'): patterns match those ops by their ONNX names too. Missing them once
        # left YOLO's last box op int8 (its input quantized to 256 steps over the image: mean IoU 0.95).
        onnx_name = {n: producers[n] for n in names if n in producers}
        named = [g for g in self.cfg.exclude.nodes if not _is_pattern(g)]
        unmatched = [e for e in named if not any(onnx_layer(n, {e}, producers) for n in names)]
        patterns = [fnmatch.translate(g) for g in self._patterns()]
        matched = [p for p in patterns if any(re.match(p, n) for n in [*names, *onnx_name.values()])]
        missing = len(unmatched) + len(patterns) - len(matched)
        warning = f"{missing} exclude.nodes pattern(s) match no OpenVINO op name"
        if missing and warning not in self.warnings:
            self.warnings.append(warning)
        # exact ONNX names (full bias correction's float layers): the ops made from them; and the
        # output-named ops whose ONNX node a pattern covers
        wanted = set(floats)
        exact = sorted(
            {n for n in names if onnx_layer(n, wanted, producers)}
            | {n for n, onnx in onnx_name.items() if any(re.match(p, onnx) for p in matched)}
        )
        if not types and not matched and not exact:
            return None
        ignored = sorted({*exact, *(n for n in names if any(re.match(p, n) for p in matched))})
        if ignored:
            self.info["ignored_ops"] = ignored
        return nncf.IgnoredScope(names=exact, types=types, patterns=matched, validate=False)


def linear_layers(ov_model) -> list[str]:
    """The MatMuls with a constant input (through a Convert, when the weights are stored compressed): the
    linear layers whose weights optimum-intel's hybrid mode compresses (its `_collect_ops_with_weights`)."""
    found = []
    for op in ov_model.get_ops():
        if op.get_type_name() != "MatMul":
            continue
        for i in range(2):
            src = op.input_value(i).get_node()
            if src.get_type_name() == "Convert":
                src = src.input_value(0).get_node()
            if src.get_type_name() == "Constant":
                found.append(op.get_friendly_name())
                break
    return found


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")
