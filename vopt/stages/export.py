"""export: torch module to ONNX (legacy exporter by default), simplify, and check parity with ONNX Runtime."""

from __future__ import annotations

import contextlib
import sys
from io import StringIO
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact, TensorSpec
from vopt.errors import BuildError, VoptError, first_line, missing_extra
from vopt.formats.onnx import NAME as ONNX
from vopt.stages.base import Stage, loads_torch_module

# export.nms without a score_threshold: Ultralytics' predict default.
DEFAULT_NMS_SCORE = 0.25


class ExportConfig(BaseModel):
    opset: int
    dynamo: bool
    dynamic_batch: bool
    simplify: bool
    parity: bool
    parity_samples: int
    input_shape: list[int]
    input_name: str
    dynamic: dict[str, list[int]] | None = None
    embed_preprocessing: bool = False
    camera_size: list[int] | None = None
    postprocess: bool = False
    nms: bool = False
    max_detections: int = 100
    score_threshold: float = 0.0
    iou_threshold: float = 0.7
    agnostic: bool = False
    # export.nms on a target whose compile step adds the NMS its format deploys (Core ML): export the raw head
    # and leave the NMS settings in the metadata for compile.
    nms_at_compile: bool = False
    # labels and num_detections as int32 (a target that binds no int64: TensorRT)
    int32_outputs: bool = False


class ExportStage(Stage):
    name = "export"
    tools = ("torch", "onnx", "onnxruntime", "onnxsim", "onnxslim")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> ExportConfig | None:
        ex = recipe.export
        if ex.nms and target.nms is None:
            from vopt.errors import RecipeError

            raise RecipeError(f"export.nms: {target.nms_refusal}")
        if ex.nms and recipe.model.family:  # a family whose heads take no NMS says so before any work
            from vopt.models.families.lookup import get_family

            get_family(recipe.model.family).check_nms({})
        # An ONNX source skips export, unless NMS is to be appended to its graph.
        if not loads_torch_module(recipe) and not (ex.nms and target.nms == "graph"):
            return None
        static = target.static_shapes
        return ExportConfig(
            opset=ex.opset or target.default_opset,
            dynamo=ex.dynamo,
            dynamic_batch=ex.dynamic_batch and not static,
            simplify=ex.simplify,
            parity=ex.parity,
            parity_samples=ex.parity_samples,
            input_shape=recipe.model.input.shape,
            input_name=recipe.model.input.name,
            dynamic=None if static else recipe.model.input.dynamic,
            embed_preprocessing=ex.embed_preprocessing,
            camera_size=ex.camera_size,
            postprocess=ex.postprocess,
            nms=ex.nms,
            max_detections=ex.max_detections,
            score_threshold=ex.score_threshold
            if ex.score_threshold is not None
            else (DEFAULT_NMS_SCORE if ex.nms else 0.0),
            iou_threshold=ex.iou_threshold,
            agnostic=ex.agnostic,
            nms_at_compile=ex.nms and target.nms == "compile",
            int32_outputs=target.int32_outputs and (ex.nms or ex.postprocess),
        )

    def run(self, artifact: Artifact, config: ExportConfig, ctx) -> Artifact:
        import torch

        from vopt.models.resolve import OutputWrapper, family_of, is_graph_only, load_module
        from vopt.registry import get_format

        family = family_of(artifact)
        if config.nms:
            family.check_nms(artifact.meta)  # a head that needs none, or that NMS cannot take: exit 2
        if not get_format(artifact.format).torch_module:  # an ONNX source: NMS appended to its graph
            return self._append_nms(artifact, config, family, ctx)
        model = load_module(artifact)
        # Fixed graphs (TorchScript, torch.export) already return plain tensors; the legacy tracer cannot
        # step into a ScriptModule held by a Python wrapper.
        wrapped = model if is_graph_only(artifact) else OutputWrapper.wrap(model, family)
        example = torch.randn(*config.input_shape, generator=torch.Generator().manual_seed(0))
        contract = artifact.preprocess
        outputs = list(family.outputs)
        post = None
        if config.postprocess:
            from vopt.models import postprocess
            from vopt.validate.detection import scoring_for

            if family.task != "object-detection":
                raise BuildError(
                    f"export.postprocess: family '{family.name}' is not a detector ({family.task}); "
                    "post-processing applies to DETR, RT-DETR and YOLOS",
                    stage="export",
                )
            post = postprocess.settings(
                scoring_for(family),
                list(artifact.preprocess.size),
                config.max_detections,
                config.score_threshold,
                index_dtype="int32" if config.int32_outputs else "int64",
            )
            wrapped = postprocess.wrap(wrapped, post)
            outputs = list(postprocess.OUTPUTS)
        elif config.nms:
            from vopt.models import postprocess

            post = self._nms_settings(artifact, config)
            if config.nms_at_compile:  # the raw head here; the target's compile adds its own NMS
                ctx.report["nms"] = "at compile: the target adds the NMS its format deploys"
            else:
                wrapped = postprocess.wrap(wrapped, post)
                outputs = list(postprocess.OUTPUTS)
        if config.embed_preprocessing:
            from vopt.models.embed import embed, raw_contract

            contract = raw_contract(artifact.preprocess, config.camera_size)
            wrapped = embed(wrapped, artifact.preprocess, config.camera_size)
            h, w = contract.size
            example = torch.randint(
                0,
                256,
                (config.input_shape[0], h, w, 3),
                dtype=torch.uint8,
                generator=torch.Generator().manual_seed(0),
            )
        path = ctx.out("model.onnx")
        dyn_axes = self._dynamic_axes(config, outputs, None if post else family.output_axes)
        # A model of several named inputs (a UNet: sample, timestep, text states): the family gives them.
        named = None if is_graph_only(artifact) else family.example_inputs(model, config.input_shape)
        if named is not None:
            if config.dynamo or config.postprocess or config.embed_preprocessing:
                raise BuildError(
                    f"export.dynamo, export.postprocess and export.embed_preprocessing take one image input; "
                    f"{family.name} takes {', '.join(named)}",
                    stage="export",
                )
            example = tuple(torch.from_numpy(v) for v in named.values())
            dyn_axes = family.dynamic_axes(config.dynamic_batch)
        with ctx.reporter.bar("export: tracing and writing ONNX", None):
            try:
                # Exporters print progress (and whole IR graphs on failure) on stdout, which belongs to
                # --json.
                with contextlib.redirect_stdout(sys.stderr if ctx.debug else StringIO()):
                    if artifact.meta.get("module_format") == "exported":
                        self._export_program(artifact.path, example, path, config, outputs)
                    elif named is not None:
                        self._export_named(wrapped, example, list(named), path, config, outputs, dyn_axes)
                    else:
                        self._export(wrapped, example, path, config, outputs, dyn_axes)
            except VoptError:
                raise
            except Exception as exc:
                raise BuildError(
                    _describe_export_failure(exc, wrapped, example),
                    stage="export",
                    hint=None if config.dynamo else dynamo_hint(str(exc)),
                ) from exc
        import onnx

        proto = onnx.load(str(path))
        nodes_before = len(proto.graph.node)
        if config.simplify:
            proto, tool = _simplify(proto, ctx)
            ctx.report["simplified_with"] = tool
        onnx.save(proto, str(path))
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), config.opset)
        ctx.report.update(
            nodes_before=nodes_before,
            nodes=len(proto.graph.node),
            opset=opset,
            exporter="dynamo"
            if config.dynamo or artifact.meta.get("module_format") == "exported"
            else "legacy",
        )
        io = artifact.io.model_copy(deep=True)
        io.outputs = [TensorSpec(name=o.name, shape=_shape(o), dtype=_dtype(o)) for o in proto.graph.output]
        io.inputs = [TensorSpec(name=i.name, shape=_shape(i), dtype=_dtype(i)) for i in proto.graph.input]
        changes: dict[str, Any] = {"io": io.model_dump(), "meta": {}}
        if post is not None:
            changes["meta"]["nms_at_compile" if config.nms_at_compile else "postprocess"] = post
        if config.embed_preprocessing:
            from vopt.models.embed import embedded_steps

            # The contract moves into the graph: the artifact now says "raw pixels", so nothing normalizes
            # twice.
            changes["preprocess"] = contract.model_dump()
            changes["meta"]["embedded_preprocessing"] = embedded_steps(
                artifact.preprocess, config.camera_size
            )
        out = artifact.derive(path, format=ONNX, **changes)
        if config.parity and named is not None:
            self._parity_named(wrapped, family, out, named, ctx)
        elif config.parity and config.camera_size:
            # The graph's resize is not PIL's: parity is with the same preprocessing in PyTorch, on the same
            # frames.
            self._parity_same_input(wrapped, family, out, config, ctx)
        elif config.parity:
            self._parity(model, family, out, config, ctx, reference_preprocess=artifact.preprocess)
        ctx.report["summary"] = f"opset {opset}, {len(proto.graph.node)} nodes" + (
            f", cosine {ctx.report['parity']['worst_cosine']:.6f}" if "parity" in ctx.report else ""
        )
        return out

    @staticmethod
    def _nms_settings(artifact: Artifact, config: ExportConfig) -> dict[str, Any]:
        from vopt.models import postprocess

        return postprocess.settings(
            "sigmoid",
            list(artifact.preprocess.size),
            config.max_detections,
            config.score_threshold,
            kind="nms",
            iou_threshold=config.iou_threshold,
            agnostic=config.agnostic,
            index_dtype="int32" if config.int32_outputs else "int64",
        )

    def _append_nms(self, artifact: Artifact, config: ExportConfig, family: Any, ctx) -> Artifact:
        """An ONNX source (e.g. what `yolo export format=onnx` wrote): the same NMS tail, exported on its own
        and joined to the graph's raw output; parity is the source on ONNX Runtime plus the reference NMS."""
        import onnx

        from vopt.models import postprocess
        from vopt.models.nms import append_to_onnx

        post = self._nms_settings(artifact, config)
        path = ctx.out("model.onnx")
        with ctx.reporter.bar("export: appending NonMaxSuppression", None):
            raw = append_to_onnx(Path(artifact.path), path, post)
        proto = onnx.load(str(path), load_external_data=False)
        io = artifact.io.model_copy(deep=True)
        io.outputs = [TensorSpec(name=o.name, shape=_shape(o), dtype=_dtype(o)) for o in proto.graph.output]
        out = artifact.derive(path, format=ONNX, io=io.model_dump(), meta={"postprocess": post})
        ctx.report.update(nodes=len(proto.graph.node), nms_appended_to=raw, outputs=list(postprocess.OUTPUTS))
        if config.parity:
            from vopt.datasets.images import describe, load_batch
            from vopt.runtimes.base import run_batches
            from vopt.runtimes.ort import runner
            from vopt.validate.reference import compare_outputs

            images = load_batch(None, artifact.preprocess, config.parity_samples)
            static = artifact.io.inputs[0].shape[0] if artifact.io.inputs else None
            static = static if isinstance(static, int) else None
            name = artifact.io.inputs[0].name
            with runner(Path(artifact.path)) as run:
                ref = postprocess.apply(run_batches(run, name, [images], static_batch=static), post)
            with runner(path) as run:
                got = run_batches(run, name, [images], static_batch=static)
            result = compare_outputs(ref, got, skip=tuple(postprocess.OUTPUTS))
            result.update(
                images=describe(None),
                samples=len(images),
                reference="the source ONNX on ONNX Runtime, then Ultralytics' non_max_suppression",
            )
            ctx.report["parity"] = result
            self._check_parity(result, family, ctx)
        ctx.report["summary"] = f"NonMaxSuppression appended to {raw}, {len(proto.graph.node)} nodes"
        return out

    @staticmethod
    def _dynamic_axes(
        config: ExportConfig, outputs: list[str], output_axes: dict[str, dict[int, str]] | None = None
    ) -> dict[str, dict[int, str]] | None:
        axes: dict[int, str] = {}
        if config.dynamic_batch or (config.dynamic and "batch" in config.dynamic):
            axes[0] = "batch"
        if config.dynamic:
            if "height" in config.dynamic:
                axes[2] = "height"
            if "width" in config.dynamic:
                axes[3] = "width"
        if not axes:
            return None
        result = {config.input_name: axes}
        spatial = 2 in axes or 3 in axes
        for o in outputs:
            result[o] = {
                **({0: "batch"} if 0 in axes else {}),
                **((output_axes or {}).get(o, {}) if spatial else {}),
            }
        return result

    @staticmethod
    def _export_program(program_path: str, example, path: Path, config: ExportConfig, outputs) -> None:
        """A torch.export program goes through the dynamo exporter as is (its shapes were fixed when
        exported)."""
        import torch

        _need_onnxscript()
        program = torch.export.load(program_path)
        onnx_program = torch.onnx.export(
            program,
            (example,),
            dynamo=True,
            opset_version=max(config.opset, 18),
            input_names=[config.input_name],
            output_names=outputs,
            verbose=False,
        )
        onnx_program.save(str(path))

    @staticmethod
    def _export(wrapped, example, path: Path, config: ExportConfig, outputs, dyn_axes) -> None:
        import torch

        if config.dynamo:
            _need_onnxscript()
            dynamic_shapes = None
            if dyn_axes and 0 in dyn_axes[config.input_name] and example.shape[0] == 1:
                example = example.repeat(2, 1, 1, 1)  # torch.export specializes a size-1 dim: trace with 2
            if dyn_axes:
                dims = {
                    i: torch.export.Dim(name, min=1, max=1024)
                    for i, name in dyn_axes[config.input_name].items()
                }
                dynamic_shapes = ({**dims},)
            prog = torch.onnx.export(
                wrapped,
                (example,),
                dynamo=True,
                opset_version=max(config.opset, 18),
                input_names=[config.input_name],
                output_names=outputs,
                dynamic_shapes=dynamic_shapes,
                verbose=False,
            )
            prog.save(str(path))
            return
        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                (example,),
                str(path),
                dynamo=False,
                opset_version=config.opset,
                input_names=[config.input_name],
                output_names=outputs,
                dynamic_axes=dyn_axes,
                do_constant_folding=True,
            )

    @staticmethod
    def _export_named(
        wrapped, args: tuple, names: list[str], path: Path, config: ExportConfig, outputs, axes
    ):
        import torch

        with torch.no_grad():
            torch.onnx.export(
                wrapped,
                args,
                str(path),
                dynamo=False,
                opset_version=config.opset,
                input_names=names,
                output_names=outputs,
                dynamic_axes=axes,
                do_constant_folding=True,
            )

    def _parity_named(self, wrapped, family, artifact: Artifact, feeds: dict[str, Any], ctx) -> None:
        """PyTorch against ONNX Runtime on the family's example inputs (a model that takes no image)."""
        import numpy as np
        import torch

        from vopt.runtimes.ort import runner
        from vopt.validate.reference import compare_outputs

        with torch.no_grad():
            outs = wrapped(*(torch.from_numpy(v) for v in feeds.values()))
        ref = {n: t.detach().float().numpy() for n, t in zip(family.outputs, outs, strict=True)}
        with runner(artifact.path) as run:
            got = run(dict(feeds))
        result = compare_outputs(ref, {k: np.asarray(v, np.float32) for k, v in got.items()})
        result.update(
            samples=len(next(iter(feeds.values()))), reference="PyTorch on the family's example inputs"
        )
        ctx.report["parity"] = result
        self._check_parity(result, family, ctx)

    def _parity_same_input(self, wrapped, family, artifact: Artifact, config: ExportConfig, ctx) -> None:
        import numpy as np
        import torch

        from vopt.datasets.images import describe, load_batch
        from vopt.runtimes.base import run_batches
        from vopt.runtimes.ort import runner
        from vopt.validate.reference import compare_outputs

        images = load_batch(None, artifact.preprocess, config.parity_samples)
        with torch.no_grad():
            outs = wrapped(torch.from_numpy(images))
        names = (
            artifact.meta["postprocess"]["outputs"] if artifact.meta.get("postprocess") else family.outputs
        )
        ref = {
            n: t.float().numpy() if t.is_floating_point() else t.numpy()
            for n, t in zip(names, outs, strict=True)
        }
        got = run_batches(runner(artifact.path), artifact.io.inputs[0].name, [images])
        skip = (*family.unordered_outputs, *ref)
        result = compare_outputs(ref, {k: np.asarray(v) for k, v in got.items()}, skip=skip)
        result.update(
            images=describe(None),
            samples=len(images),
            reference="PyTorch with the same in-graph preprocessing, on the same camera-size frames",
        )
        ctx.report["parity"] = result
        self._check_parity(result, family)

    def _parity(
        self, model, family, artifact: Artifact, config: ExportConfig, ctx, reference_preprocess=None
    ) -> None:
        """PyTorch on the float pipeline vs ONNX Runtime on the artifact's own input (raw pixels when the
        preprocessing is embedded), the same real images."""
        from vopt.validate.reference import compare_with_torch

        result = compare_with_torch(
            model,
            family,
            artifact,
            samples=config.parity_samples,
            data=None,
            ctx=ctx,
            reference_preprocess=reference_preprocess,
        )
        ctx.report["parity"] = result
        self._check_parity(result, family, ctx)

    @staticmethod
    def _check_parity(result: dict[str, Any], family: Any, ctx: Any = None) -> None:
        # Unordered (top-k) outputs are already matched query-to-query, so every output is checked.
        failing = [name for name, m in result["outputs"].items() if m["cosine"] < family.min_cosine]
        loose = [name for name, m in result["outputs"].items() if m["max_abs_diff"] > family.atol]
        if loose and ctx is not None:
            ctx.warn(
                f"max abs diff above the {family.name} tolerance {family.atol:g} on {', '.join(loose)} "
                "(cosine still within bounds)"
            )
        if failing:
            detail = ", ".join(
                f"{n}: cosine {result['outputs'][n]['cosine']:.6f}, "
                f"max abs {result['outputs'][n]['max_abs_diff']:.3g}"
                for n in failing
            )
            raise BuildError(
                f"ONNX Runtime output drifts from PyTorch beyond the {family.name} tolerance: {detail}",
                stage="export",
            )


def _need_onnxscript() -> None:
    import importlib.util

    if importlib.util.find_spec("onnxscript") is None:
        raise missing_extra(
            "onnxscript", "dynamo", "the dynamo ONNX exporter (export.dynamo: true, .pt2 sources)"
        )


def _dtype(value_info) -> str:
    import onnx

    elem = value_info.type.tensor_type.elem_type
    return onnx.helper.tensor_dtype_to_np_dtype(elem).name if elem else "float32"


def _shape(value_info) -> list[int | str]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_param if d.dim_param else int(d.dim_value) for d in dims]


def _simplify(proto, ctx):
    try:
        import onnxsim

        simplified, ok = onnxsim.simplify(proto)
        if ok:
            return simplified, "onnxsim"
        ctx.warn("onnxsim could not verify its result; trying onnxslim")
    except ImportError:
        pass
    except Exception as exc:  # onnxsim raises bare RuntimeErrors on unsupported graphs
        ctx.warn(f"onnxsim failed ({first_line(exc, limit=120)}); trying onnxslim")
    try:
        import onnxslim

        return onnxslim.slim(proto), "onnxslim"
    except ImportError:
        ctx.warn("no simplifier installed (pip install 'vopt[simplify]'); exporting unsimplified")
        return proto, None


def dynamo_hint(text: str) -> str | None:
    """When the legacy exporter fails on an aten op that the dynamo exporter's op library (onnxscript's
    torchlib) has, such as DINOv2-with-registers' antialiased bicubic resize: say to switch exporters."""
    import re

    found = re.search(r"aten::\w+", text)
    if found is None:
        return None
    op = found.group()
    try:
        import onnxscript.function_libs.torch_lib.ops  # noqa: F401 - registers the ops
        from onnxscript.function_libs.torch_lib.registration import default_registry

        handled = op in default_registry
        extra = ""
    except ImportError:  # without onnxscript: the ops known to need it
        handled = op in ("aten::_upsample_bicubic2d_aa", "aten::_upsample_bilinear2d_aa")
        extra = " (and pip install 'vopt[dynamo]')"
    return f"the dynamo exporter handles {op}: set export.dynamo: true{extra}" if handled else None


def _describe_export_failure(exc: Exception, wrapped: Any = None, example: Any = None) -> str:
    """Name the op and the module path that failed: from the exporter's message, else by finding the op
    in a trace of the model (each traced node records the module scope it ran in)."""
    import re

    text = str(exc)
    first = first_line(exc)
    op_match = re.search(r"(aten::\w+|prim::\w+|onnx::\w+)", text) or re.search(
        r"operator '?([\w:.]+)'?", text
    )
    op = op_match.group(1) if op_match else None
    mod_match = re.search(r"(?:module|Module)(?! named) ['\"]?([\w.]+)['\"]?", text)
    module = mod_match.group(1) if mod_match else None
    where = None
    if op and op.startswith("aten::") and wrapped is not None and example is not None:
        module, where = _locate_op(wrapped, example, op) or (module, None)
    parts = [f"torch.onnx.export failed: {first}"]
    if op:
        parts.append(f"op: {op}")
    if module:
        parts.append(f"module: {module}")
    if where:
        parts.append(f"at {where}")
    return "; ".join(parts)


def _locate_op(wrapped: Any, example: Any, op: str) -> tuple[str, str | None] | None:
    """(module path with its class, source line) of the first node of kind `op` in a trace of the model."""
    import torch

    try:
        args = example if isinstance(example, tuple) else (example,)
        with torch.no_grad(), contextlib.redirect_stdout(StringIO()):
            traced = torch.jit.trace(wrapped, args, check_trace=False, strict=False)
    except Exception:  # untraceable: the exporter's own message is all there is
        return None
    modules = dict(wrapped.named_modules())
    for node in traced.inlined_graph.nodes():
        if node.kind() != op:
            continue
        scope = node.scopeName().split("/")[-1].replace("__module.", "", 1)
        cls = type(modules[scope]).__name__ if scope in modules else None
        path = scope[len("model.") :] if scope.startswith("model.") and hasattr(wrapped, "model") else scope
        source = node.sourceRange().strip().splitlines()
        return (f"{path or '<root>'}{f' ({cls})' if cls else ''}", source[0] if source else None)
    return None
