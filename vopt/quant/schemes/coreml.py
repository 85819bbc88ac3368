"""coreml: coremltools weight compression of the compiled .mlpackage (runs after compile):
linear int8 per-channel (default) or k-means palettization (options.palettize_bits)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from vopt.errors import missing_extra
from vopt.quant.schemes.base import QuantTypes, Scheme, SchemeOptions


class CoreMlWeightOptions(SchemeOptions):
    palettize_bits: Literal[1, 2, 3, 4, 6, 8] | None = Field(
        default=None, description="k-means palettization with this many bits instead of linear int8."
    )


class CoreMlWeightScheme(Scheme):
    name = "coreml-weights"
    precisions = ("int8",)
    output_format = "coreml-mlpackage"
    input_formats = ("coreml-mlpackage",)
    types = {"int8": QuantTypes(None, "int8")}
    requires = (("coremltools", "coremltools", "coreml"),)
    calibrates = False
    tools = ("coremltools",)
    Options = CoreMlWeightOptions

    def output_name(self) -> str:
        return "model.mlpackage"

    def quantize(self, model: Path, exclude_nodes: list[str], out: Path) -> Path:
        try:
            import coremltools as ct
            import coremltools.optimize.coreml as cto
        except ImportError as exc:
            raise missing_extra("coremltools", "coreml", "the coreml quantization scheme") from exc

        mlmodel = ct.models.MLModel(
            str(model), skip_model_load=True
        )  # prediction needs macOS; conversion does not
        op_types = self.excluded_ops()
        bits = self.options.palettize_bits
        if bits:
            op_cfg = cto.OpPalettizerConfig(mode="kmeans", nbits=int(bits))
            config = cto.OptimizationConfig(global_config=op_cfg, op_type_configs={t: None for t in op_types})
            compressed = cto.palettize_weights(mlmodel, config)
            self.info["method"] = f"palettization, {bits}-bit k-means"
        else:
            granularity = "per_channel" if self.cfg.per_channel else "per_tensor"
            op_cfg = cto.OpLinearQuantizerConfig(
                mode="linear_symmetric", dtype="int8", granularity=granularity
            )
            config = cto.OptimizationConfig(global_config=op_cfg, op_type_configs={t: None for t in op_types})
            compressed = cto.linear_quantize_weights(mlmodel, config)
            self.info["method"] = f"linear symmetric int8 weights, {granularity}"
        # The package says what it now is (compile wrote the float precision before quantize ran).
        precision = f"{bits}-bit palettized weights" if bits else "int8 weights"
        compressed.user_defined_metadata["vopt.precision"] = precision
        compressed.user_defined_metadata["vopt.quantize.scheme"] = self.name
        compressed.save(str(out))
        return out
