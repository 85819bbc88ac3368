"""coreml: an ML Program (.mlpackage) converted by coremltools from the torch module (torch.export, falling
back to jit.trace). Prediction needs macOS; elsewhere the package is converted, saved and its spec read
back."""

from __future__ import annotations

import importlib.util
import platform
import re
from typing import Any, Literal

from pydantic import Field

from vopt.core.artifact import Artifact
from vopt.errors import BuildError, first_line, missing_extra
from vopt.formats.coreml_mlpackage import import_coremltools
from vopt.runtimes.base import Runner, Unavailable
from vopt.targets.base import CompileBase, Target

COMPUTE = ("fp16", "fp32")  # Core ML compute precisions; int8 is weight compression by the quantize step
DeploymentTarget = Literal["iOS15", "iOS16", "iOS17", "iOS18", "macOS12", "macOS13", "macOS14", "macOS15"]


class CoreMlConfig(CompileBase):
    target: Literal["coreml"] = "coreml"
    compute_units: Literal["ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE"] = Field(
        default="ALL", description="Where Core ML may run the model."
    )
    minimum_deployment_target: DeploymentTarget = Field(
        default="iOS16", description="Oldest OS the package must load on (ML Programs need iOS15/macOS12+)."
    )
    converter: Literal["auto", "export", "trace"] = Field(
        default="auto", description="torch.export (auto tries it first) or torch.jit.trace."
    )


class CoreMlTarget(Target):
    name = "coreml"
    runtime_name = "coreml"
    Config = CoreMlConfig
    extra = "coreml"
    requires = ("coremltools",)
    default_precision = "fp16"
    quant_scheme = "coreml-weights"
    quantize_after_compile = True  # coremltools compresses the weights of the converted .mlpackage
    # compile converts the build's torch module (ctx.artifacts), whatever the export step made after it.
    input_formats = ("torch-module", "onnx")
    description = "Core ML ML Program (.mlpackage) for Apple devices"
    # export.nms: a pipeline of the ML Program and Core ML's own NonMaximumSuppression model (what Vision runs
    # and Ultralytics' CoreML export builds), added by compile (vopt.targets.coreml_nms).
    nms = "compile"
    ci_runners = {"github": ("macos-14",), "gitlab": ("saas-macos-medium-m1",)}

    def tool_versions(self) -> list[str]:
        return ["coremltools", "torch"]

    def hardware(self) -> tuple[bool, str]:
        if platform.system() == "Darwin":
            return True, "macOS: Core ML prediction available"
        return False, f"{platform.system()}: coremltools converts here, but Core ML prediction needs macOS"

    def check_recipe(self, recipe) -> None:
        from vopt.errors import RecipeError

        precision = self.precision(recipe.compile)
        if precision not in COMPUTE and not _quantized(recipe):
            raise RecipeError(
                f"compile.precision: coreml computes in fp16 or fp32, not {precision}; for "
                f"{precision} weights add a `quantize:` section (coreml-weights, after "
                "compile)"
            )

    def compile(self, artifact: Artifact, cfg: CoreMlConfig, ctx) -> Artifact:
        self.check_format(artifact)
        setting = self.precision(cfg)  # int8 without a quantize step was refused at plan time (check_recipe)
        if importlib.util.find_spec("coremltools") is None:
            raise missing_extra("coremltools", "coreml", "the coreml target")
        import numpy as np
        import torch

        ct = import_coremltools()

        from vopt.models.resolve import OutputWrapper, family_of, load_module
        from vopt.targets.metadata import artifact_metadata, effective_precision

        source = _torch_source(ctx)
        family = family_of(source)
        module = load_module(source)
        wrapped = OutputWrapper.wrap(module, family)
        post = artifact.meta.get("nms_at_compile")  # export.nms: the network's part of Core ML's NMS pipeline
        outputs = list(family.outputs)
        if post:
            from vopt.targets.coreml_nms import NMS_INPUTS, for_nms

            wrapped, outputs = for_nms(wrapped, list(ctx.model_input.shape)), list(NMS_INPUTS)
        shape = list(ctx.model_input.shape)
        name = ctx.model_input.name
        example: Any = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
        inputs = [ct.TensorType(name=name, shape=shape, dtype=np.float32)]
        named = family.example_inputs(module, shape)  # several named inputs (a UNet): the family's
        if named is not None:
            example = tuple(torch.from_numpy(v) for v in named.values())
            inputs = [
                ct.TensorType(name=n, shape=v.shape, dtype=np.float32 if v.dtype.kind == "f" else np.int32)
                for n, v in named.items()
            ]
        # The package computes in fp32 or fp16; int8 weights come from the quantize step after this one.
        compute = "fp32" if setting == "fp32" else "fp16"
        precision = effective_precision(source, setting, built=compute)
        program, how = _capture(wrapped, example, cfg.converter, family.name)
        try:
            mlmodel = self._convert(ct, program, inputs, outputs, compute, cfg)
        except Exception as exc:
            if cfg.converter != "auto" or how != "torch.export":
                raise BuildError(
                    f"coremltools could not convert {family.name} ({how}): {_describe(exc)}", stage="compile"
                ) from exc
            # coremltools takes some exported programs' ops only as TorchScript (CLIP's `alias`): trace
            program, how = _capture(wrapped, example, "trace", family.name)
            how += f" (coremltools refused the torch.export program: {_describe(exc)})"
            try:
                mlmodel = self._convert(ct, program, inputs, outputs, compute, cfg)
            except Exception as exc2:
                raise BuildError(
                    f"coremltools could not convert {family.name} (torch.export: {_describe(exc)}; "
                    f"jit.trace: {_describe(exc2)})",
                    stage="compile",
                ) from exc2
        meta = artifact_metadata(source, ctx.build_name, self.name, precision)
        if post:
            from vopt.targets.coreml_nms import pipeline

            mlmodel, outputs = pipeline(mlmodel, post, source, list(ctx.model_input.shape))
            how += " + Core ML NonMaximumSuppression (pipeline)"
        mlmodel.user_defined_metadata.update(meta)
        mlmodel.short_description = f"{ctx.build_name} (vopt {meta['vopt.version']})"
        path = ctx.out("model.mlpackage")
        mlmodel.save(str(path))
        expect = [i.name for i in inputs] + (["iouThreshold", "confidenceThreshold"] if post else [])
        check = read_back(path, expect_inputs=expect, expect_outputs=outputs)
        if check["problems"]:
            raise BuildError(
                "the saved .mlpackage does not match the model: " + "; ".join(check["problems"]),
                stage="compile",
            )
        ctx.report.update(
            converter=how,
            spec=check,
            compute_units=cfg.compute_units,
            minimum_deployment_target=cfg.minimum_deployment_target,
            summary=f"mlprogram via {how}, {compute} compute, {check['ops']} ops, "
            f"target {cfg.minimum_deployment_target}",
        )
        # I/O as the package has it (fixed shapes), not the ONNX export's dynamic batch.
        return source.derive(path, format="coreml-mlpackage", io=check["io"], meta={"precision": precision})

    @staticmethod
    def _convert(ct: Any, program: Any, inputs: list, outputs: list, compute: str, cfg: CoreMlConfig) -> Any:
        import numpy as np

        return ct.convert(
            program,
            # fp32 I/O around fp16 compute, like the other targets' artifacts: callers feed the same arrays.
            inputs=inputs,
            outputs=[ct.TensorType(name=o, dtype=np.float32) for o in outputs],
            convert_to="mlprogram",
            compute_precision=ct.precision.FLOAT32 if compute == "fp32" else ct.precision.FLOAT16,
            compute_units=getattr(ct.ComputeUnit, cfg.compute_units),
            minimum_deployment_target=getattr(ct.target, cfg.minimum_deployment_target),
            skip_model_load=True,
        )

    def runner(self, artifact: Artifact, cfg: CoreMlConfig) -> Runner | Unavailable:
        if platform.system() != "Darwin":
            return Unavailable(
                "Core ML prediction needs macOS (coremltools raises 'Model prediction is only "
                "supported on macOS'); the .mlpackage was converted and its spec checked"
            )
        if importlib.util.find_spec("coremltools") is None:
            return Unavailable("coremltools is not installed: pip install 'vopt[coreml]'")
        from vopt.runtimes.coreml import runner

        return runner(artifact.path, compute_units=cfg.compute_units)


def _torch_source(ctx) -> Artifact:
    """The latest torch-module artifact of this build (prune > fuse > load); for a component of a model of
    components, that component's."""
    for name in ("prune", "fuse", "load"):
        art = ctx.artifacts.get(name)
        if art is not None and ctx.component is not None and art.components:
            art = art.components.get(ctx.component)
        if art is not None and art.format == "torch-module":
            return art
    raise BuildError(
        "coreml converts from the PyTorch module, but this build has none (model loaded from ONNX?)",
        stage="compile",
    )


def _capture(module, example, converter: str, family: str):
    """torch.export (decomposed to core ATen), or jit.trace; auto tries export first."""
    import torch

    errors = []
    args = example if isinstance(example, tuple) else (example,)
    if converter in ("auto", "export"):
        try:
            program = torch.export.export(module, args).run_decompositions({})
            return program, "torch.export"
        except Exception as exc:
            if converter == "export":
                raise BuildError(
                    f"torch.export failed for {family}: {_describe(exc)}", stage="compile"
                ) from exc
            errors.append(f"torch.export: {_describe(exc)}")
    try:
        with torch.no_grad():
            traced = torch.jit.trace(module, args, strict=False)
        return traced, "jit.trace" + (" (torch.export failed)" if errors else "")
    except Exception as exc:
        tried = "; ".join([*errors, f"jit.trace: {_describe(exc)}"])
        raise BuildError(f"could not capture {family} for coremltools: {tried}", stage="compile") from exc


def _describe(exc: Exception) -> str:
    """First line of the error, plus the op it names (coremltools: "PyTorch convert function for op
    'new_ones' not implemented")."""
    text = str(exc).strip()
    first = first_line(exc, limit=240)
    op = re.search(r"op '([\w.:]+)'", text) or re.search(r"(aten[:.]{1,2}\w+)", text)
    return f"{first} [op: {op.group(1)}]" if op and op.group(1) not in first else first


def read_back(path, expect_inputs: list[str] | None = None, expect_outputs: list[str] | None = None) -> dict:
    """Load the package's spec without Core ML (skip_model_load) and describe/check it."""
    ct = import_coremltools()

    spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    desc = spec.description
    inputs = {i.name: list(i.type.multiArrayType.shape) for i in desc.input}
    outputs = [o.name for o in desc.output]
    io = {
        side: [
            {
                "name": f.name,
                "shape": [int(d) for d in f.type.multiArrayType.shape],
                "dtype": _ML_DTYPES.get(f.type.multiArrayType.dataType, "float32"),
            }
            for f in feats
        ]
        for side, feats in (("inputs", desc.input), ("outputs", desc.output))
    }
    meta = dict(desc.metadata.userDefined)
    problems = []
    if expect_inputs is not None and sorted(inputs) != sorted(expect_inputs):
        problems.append(f"inputs {sorted(inputs)} != {sorted(expect_inputs)}")
    if expect_outputs is not None and outputs != list(expect_outputs):
        problems.append(f"outputs {outputs} != {list(expect_outputs)}")
    if "vopt.preprocess" not in meta:
        problems.append("no vopt.preprocess in user-defined metadata")
    ops = 0
    from vopt.targets.coreml_nms import nms_settings

    nms = nms_settings(spec)  # a pipeline: the ML Program, then Core ML's NonMaximumSuppression
    programs = list(spec.pipeline.models) if nms else [spec]
    for model in programs:
        if model.WhichOneof("Type") == "mlProgram":
            for fn in model.mlProgram.functions.values():
                for block in fn.block_specializations.values():
                    ops += len(block.operations)
    return {
        **({"nms": nms} if nms else {}),
        "spec_version": spec.specificationVersion,
        "inputs": inputs,
        "outputs": outputs,
        "ops": ops,
        "metadata": meta,
        "problems": problems,
        "io": io,
    }


# Core ML ArrayFeatureType.ArrayDataType values.
_ML_DTYPES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}


def _quantized(recipe) -> bool:
    """A `quantize:` section that really quantizes (coreml: weight compression after compile)."""
    q = getattr(recipe, "quantize", None)
    return q is not None and q.precision != "fp32"
