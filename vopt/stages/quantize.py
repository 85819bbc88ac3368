"""quantize: calibrate on real data, quantize with the target's scheme, check the result against the
float model (gates), fall back layer by layer when asked, and say whether the quantized model is faster."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from vopt.core.artifact import Artifact, Preprocess
from vopt.errors import BuildError, GateFailed, RecipeError
from vopt.quant.config import QuantizeConfig
from vopt.quant.fallback import fallback_to, passed
from vopt.stages.base import Stage

# The default gates of a pipeline component's check (vopt.validate.defaults): its outputs against float's.
COMPONENT_TASK = "pipeline-component"


class QuantizeStage(Stage):
    name = "quantize"
    tools = ("onnx", "onnxruntime")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> QuantizeConfig | None:
        from vopt.quant.schemes import choose, recipe_problems

        problems = recipe_problems(recipe, target)  # the recipe loader reports these with file:line first
        if problems:
            loc, message = problems[0]
            raise RecipeError(f"{'.'.join(str(p) for p in loc)}: {message}")
        q = recipe.quantize
        if q is None or q.precision == "fp32":
            return None
        scheme, precision = choose(q, target)
        types = scheme.default_types(precision)
        from vopt.quant.feeds import runs_as_pipeline
        from vopt.quant.heldout import for_quantize

        feeds_from = None
        if runs_as_pipeline(recipe):  # a pipeline's component: feeds recorded while the pipeline runs
            from vopt.quant.feeds import feeds_from as recorded_from

            feeds_from = recorded_from(recipe, q.calibration, q.check.holdout)
        # overlap is a recipe error, at plan time
        heldout = for_quantize(q, bool(scheme.calibrates) and feeds_from is None)
        return QuantizeConfig(
            target=target.name,
            scheme=scheme.name,
            precision=precision,
            per_channel=types.per_channel if q.per_channel is None else q.per_channel,
            activation_type=q.activation_type or types.activation,
            weight_type=q.weight_type or types.weight,
            calibration=q.calibration,
            exclude=q.exclude,
            gates=q.gates,
            auto_fallback=q.auto_fallback,
            max_float_fraction=q.max_float_fraction,
            fallback_step=q.fallback_step,
            require_speedup=q.require_speedup,
            check=q.check,
            options=q.options,
            search=q.search,
            preprocess=_contract(recipe),
            input_shape=list(recipe.model.input.shape),
            compile=target.settings_for_quantize(recipe.compile),
            score_threshold=recipe.validate_.score_threshold if recipe.validate_ is not None else 0.5,
            gate_mode=q.gate_mode,
            default_gates=q.default_gates,
            host=scheme.host_facts(q.options, target),
            calibration_from=feeds_from,
            **heldout,
        )

    @classmethod
    def requirements(cls, config: QuantizeConfig, target: Any) -> list[tuple[str, str]]:
        """The scheme's packages, checked before any step runs (a build), not by `vopt check` or `plan`, which
        validate the recipe wherever it is read (as a target whose runtime is missing still plans)."""
        from vopt.registry import get_scheme

        return [(module, extra) for module, _dist, extra in get_scheme(config.scheme).requires]

    @classmethod
    def fingerprint(cls, config: QuantizeConfig) -> dict[str, Any]:
        """Calibration and validation data hashes (file lists, sizes, mtimes + preprocessing)."""
        from vopt.datasets.images import fingerprint, list_images
        from vopt.datasets.split import paths
        from vopt.quant.calibration import CalibrationSet

        pre = Preprocess(**config.preprocess)
        if config.calibration_from is not None:  # recorded feeds: the recipe data they come from
            from vopt.quant.feeds import fingerprint as feeds_fingerprint
            from vopt.recipe.sections.model import ModelSection
            from vopt.registry import get_source

            spec = ModelSection.model_validate(config.calibration_from["model"])
            calib = CalibrationSet(
                config.calibration, pre, config.input_shape, feeds_from=config.calibration_from
            )
            return {
                "calibration": calib.fingerprint() if _calibrates(config) else None,
                "check": feeds_fingerprint(config.calibration_from, {"check": config.check.samples}),
                "model_files": get_source(spec.source).fingerprint(spec),  # the files the pipeline runs
            }
        calib = (
            CalibrationSet(config.calibration, pre, config.input_shape, paths(config.heldout, "calibration"))
            if _calibrates(config)
            else None
        )
        check = paths(config.heldout, "check") or list_images(config.check.data)
        return {
            "calibration": calib.fingerprint() if calib else None,
            "check": fingerprint(check, pre, {"samples": config.check.samples}, labels=config.check.labels),
        }

    @classmethod
    def extra_tools(cls, config: QuantizeConfig, target: Any) -> list[str]:
        from vopt.registry import get_scheme

        return [*get_scheme(config.scheme).tools, *target.tool_versions()]

    def run(self, artifact: Artifact, config: QuantizeConfig, ctx) -> Artifact:
        from vopt.models.resolve import family_of
        from vopt.registry import get_scheme

        scheme_cls = get_scheme(config.scheme)
        if artifact.format not in scheme_cls.input_formats:
            raise BuildError(
                f"scheme '{config.scheme}' takes {', '.join(scheme_cls.input_formats)}, got "
                f"{artifact.format}",
                stage="quantize",
            )
        from vopt.quant.schemes.base import quiet_logs

        family = family_of(artifact)
        # The exported model's own input (e.g. uint8 NHWC when the preprocessing is embedded), at the recipe's
        # batch.
        dims = artifact.io.inputs[0].shape[1:] if artifact.io.inputs else []
        recorded = None
        if config.calibration_from is not None:  # a pipeline's component: every input from its recorded feeds
            recorded = RecordedFeeds(ctx, config)
            config = recorded.shaped(config)
        elif dims and all(isinstance(d, int) for d in dims) and list(dims) != config.input_shape[1:]:
            config = config.model_copy(update={"input_shape": [config.input_shape[0], *dims]})
        from vopt.quant.attention import with_transformer_defaults

        detected = with_transformer_defaults(
            family, Path(artifact.path)
        )  # generic-path LeViT, MobileViT, BEiT
        if detected:
            ctx.report["transformer_defaults"] = detected
            ctx.reporter.info(
                f"quantize: {detected['attention_blocks']} attention block(s) in the graph: transformer "
                f"defaults ({', '.join(detected['quant_exclude_ops'])} kept in float)"
            )
        # Calibrators and NNCF print to stdout, which `--json` owns: the whole step runs with stdout on
        # stderr.
        with tempfile.TemporaryDirectory(prefix="vopt-quant-") as tmp, quiet_logs():
            step = QuantizeStep(artifact, config, ctx, scheme_cls(config, Path(tmp), family), family)
            step.recorded = recorded
            try:
                return step.go()
            except GateFailed as exc:  # a component's loop gave up: say which component
                if ctx.component is None:
                    raise
                raise GateFailed(
                    f"{ctx.component}: {exc.message}",
                    lines=exc.lines,
                    failures=[{**f, "component": ctx.component} for f in exc.failures],
                ) from None


def _contract(recipe: Any) -> dict[str, Any]:
    """The artifact's preprocessing contract (family + recipe, as load resolves it): calibration and the check
    read images through it, so the data fingerprint in the cache key must be computed with it too."""
    from vopt.models.resolve import planned_preprocess

    return planned_preprocess(recipe.model, recipe.preprocess).model_dump(mode="json")


def _calibrates(config: QuantizeConfig) -> bool:
    from vopt.registry import get_scheme

    return bool(get_scheme(config.scheme).calibrates)


class RecordedFeeds:
    """A pipeline component's calibration and check feeds (vopt.quant.feeds): its inputs recorded while the
    pipeline ran in PyTorch on the calibration prompts and, held out, on the check's prompts."""

    def __init__(self, ctx: Any, config: QuantizeConfig):
        import numpy as np

        from vopt.quant.feeds import recorded

        data = config.calibration_from
        assert data is not None and ctx.component is not None
        self.component, self.data = ctx.component, data
        with ctx.reporter.bar(f"record {ctx.component} inputs (pipeline runs in PyTorch)", None):
            got = recorded(
                ctx,
                ctx.component,
                data,
                {"calibration": config.calibration.samples, "check": config.check.samples},
            )
        self.calibration, check = got["calibration"], got["check"]
        self.runs = {"calibration": got["calibration_runs"], "check": got["check_runs"]}
        if not self.calibration or not check:
            raise BuildError(
                f"no inputs of component {ctx.component} were recorded from the pipeline (its family runs "
                "no pipeline that calls it)",
                stage="quantize",
            )
        from vopt.runtimes.base import Feeds

        # one batch of named inputs: the calls of the first call's shapes (a VAE decoder's pipeline-size
        # latents, not its tiles, which are other sizes)
        first = {k: np.shape(v) for k, v in check[0].items()}
        same = [c for c in check if {k: np.shape(v) for k, v in c.items()} == first]
        self.check = Feeds.concat(same)
        self.check_calls = len(same)

    def shaped(self, config: QuantizeConfig) -> QuantizeConfig:
        """The config with each input's static shape where every recorded call had the same size (the batch:
        one guided prompt's), and that batch as the step's batch."""
        from vopt.quant.feeds import static_shapes

        shapes = static_shapes(self.calibration)
        batch = next(iter(shapes.values()))[0] if shapes else None
        batch = batch if isinstance(batch, int) else config.input_shape[0]
        return config.model_copy(
            update={"input_shapes": shapes, "input_shape": [batch, *config.input_shape[1:]]}
        )

    def prompts(self, role: str) -> list[str]:
        """The prompts of the runs the role used."""
        runs = self.data["calibration_runs" if role == "calibration" else "check_runs"][: self.runs[role]]
        return sorted({r[0] for r in runs})

    def describe(self, role: str) -> str:
        from vopt.quant.feeds import describe

        calls = len(self.calibration) if role == "calibration" else self.check_calls
        return describe(self.data, self.component, role, calls, self.runs[role])


class QuantizeStep:
    """One quantize step: calibrate, quantize, check, hand the step to an accuracy loop when its gates fail,
    time the result. It is the vopt.quant.protocol.QuantizeSession the loops drive (the layer fallback, the
    search): they reuse what it holds (float outputs, calibration ranges) through that interface only."""

    def __init__(self, artifact: Artifact, config: QuantizeConfig, ctx: Any, scheme: Any, family: Any):
        self.artifact, self.cfg, self.ctx, self.scheme, self.family = artifact, config, ctx, scheme, family
        self.report: dict[str, Any] = ctx.report
        self.ref: dict[str, Any] | None = None
        self.images: Any = None
        self.calib: Any = None  # the CalibrationSet, once go() made it
        self.ctx_notes: set[str] = set()
        self.kept_int16: list[str] = []  # the search's layers with 16-bit activations
        self.on_device = True  # the check ran where the target says the artifact computes (_check_outputs)
        self.recorded: RecordedFeeds | None = None  # a pipeline's component: its recorded feeds (run() sets)
        self.speed_floats: list[str] = []  # layers kept float because their int8 kernel is slower here
        self.layer_costs: dict[str, float] = {}  # node -> ms keeping it float adds (what the search weighs)
        # The contract the cache key's data fingerprint was computed with; the artifact's own when they differ
        # (an hf model without `family:` is only known after load), since that is what the model expects.
        planned = Preprocess(**config.preprocess)
        self.pre = planned if planned == artifact.preprocess else artifact.preprocess

    # -- the flow -----------------------------------------------------------------------------
    def go(self) -> Artifact:
        from vopt.quant.calibration import CalibrationSet
        from vopt.quant.memory import PeakRss

        cfg, ctx, scheme = self.cfg, self.ctx, self.scheme
        self.report.update(
            scheme=cfg.scheme,
            precision=cfg.precision,
            target=cfg.target,
            settings={
                "activation_type": cfg.activation_type,
                "weight_type": cfg.weight_type,
                "per_channel": cfg.per_channel,
                "calibration_method": cfg.calibration.method,
            },
        )
        model = scheme.prepare(Path(self.artifact.path))
        from vopt.datasets.split import paths

        calib = CalibrationSet(
            cfg.calibration,
            self.pre,
            cfg.input_shape,
            paths(cfg.heldout, "calibration"),
            feeds_from=cfg.calibration_from,
            component=ctx.component,
        )
        if self.recorded is not None:
            calib.use_feeds(self.recorded.calibration)
        self.calib = calib
        if scheme.calibrates:
            with ctx.reporter.bar(f"calibrate ({calib.kind})", calib.count()) as advance, PeakRss() as mem:
                seen = scheme.calibrate(model, calib, advance)
            self.report["calibration"] = {
                "data": calib.describe(),
                "kind": calib.kind,
                "synthetic": calib.kind == "synthetic",
                "samples": seen or calib.count(),
                "batch": cfg.input_shape[0] if calib.kind == "feeds" else cfg.calibration.batch,
                "seed": cfg.calibration.seed,
                "method": cfg.calibration.method,
                "fingerprint": calib.fingerprint(),
                **mem.report(),
            }
            if calib.kind == "images":  # distinct images, augmented crops, skipped files
                self.report["calibration"].update(calib.stats.report())
                for note in calib.stats.warnings("quantize calibration"):
                    ctx.warn(note)
            if calib.kind == "synthetic":
                ctx.warn(
                    "calibrated on SYNTHETIC random tensors (calibration.synthetic: true): ranges may not "
                    "match real inputs"
                )
        out = ctx.out(scheme.output_name())
        with ctx.reporter.bar(f"quantize ({cfg.scheme}, {cfg.precision})", None):
            result = scheme.quantize(model, [], out)
        kept: list[str] = []
        checked = self.evaluate(result)
        if getattr(scheme.options, "float_if_slower", False):  # speed-aware: vopt.quant.layer_speed
            result, checked = self._speed_layers(Path(model), Path(result), checked)
            cfg = self.cfg  # now with those layers in exclude.nodes, for the loops below
        failed = checked is not None and not passed(checked["gates"])
        if failed and (cfg.search is not None or cfg.auto_fallback):
            if not scheme.ranks_layers:
                ctx.warn(
                    f"{'quantize.search' if cfg.search is not None else 'auto_fallback'}: scheme "
                    f"'{cfg.scheme}' cannot rank layers (the QDQ schemes and nncf can); gates checked as is"
                )
            else:  # the accuracy-aware search, or (without quantize.search) the layer fallback
                from vopt.quant.fallback import run_fallback
                from vopt.quant.search import run_search

                loop = run_search if cfg.search is not None else run_fallback
                found = loop(self, Path(model), Path(result), checked)
                result, kept, checked, self.kept_int16 = (
                    found.path,
                    found.float_layers,
                    found.check,
                    found.int16_layers,
                )
                self.report.update(found.report)
                if found.calibration_method and "calibration" in self.report:
                    self.report["calibration"]["method"] = found.calibration_method
        if checked is not None:
            self.report["check"], self.report["gates"] = checked, checked["gates"]
        for w in scheme.warnings:
            ctx.warn(w)
        self._evidence_notes(calib)
        self.report["scheme_info"] = scheme.info
        if result != out:
            _move(result, out)
        if self.speed_floats:
            self.report["kept_float"] = {"for_speed": self.speed_floats, "for_accuracy": kept}
        kept_all = [*self.speed_floats, *kept]
        meta: dict = {"quantized": {"scheme": cfg.scheme, "precision": cfg.precision, "kept_float": kept_all}}
        if (
            ctx.target.quantize_after_compile
        ):  # compile already labelled the artifact with its float precision
            meta["precision"] = cfg.precision
        quant = self.artifact.derive(out, format=scheme.output_format, io=self._io(out), meta=meta)
        self._metadata(out, quant, kept)
        self.speed(Path(model), quant)
        self._summary(kept)
        return quant

    def _speed_layers(self, model: Path, result: Path, checked: Any) -> tuple[Path, Any]:
        """The layers whose int8 kernel is slower than float here stay float when the whole artifact is then
        faster at the same gates (vopt.quant.layer_speed). They join exclude.nodes, so the search and the
        fallback build on them and the artifact's metadata lists them."""
        from vopt.quant.layer_speed import keep_slow_layers_float

        emulated = getattr(self.ctx.target, "emulated", None)
        if emulated:
            self.report["speed_layers"] = {"status": "not measured", "reason": emulated}
            return result, checked
        path, floats, got, report = keep_slow_layers_float(self, model, result, checked)
        self.report["speed_layers"] = report
        self.layer_costs = {r["node"]: -r["float_saves_ms"] for r in report.get("table", [])}
        if floats:
            self.speed_floats = floats
            exclude = self.cfg.exclude.model_copy(update={"nodes": [*self.cfg.exclude.nodes, *floats]})
            self.cfg = self.scheme.cfg = self.cfg.model_copy(update={"exclude": exclude})
        return path, got

    # -- the session an accuracy loop drives (vopt.quant.protocol.QuantizeSession) ------------------
    @property
    def check_images(self) -> Any:
        if self.images is None:
            self._load_images()
        return self.images

    @property
    def reference(self) -> dict[str, Any]:
        return self.ref or {}

    def as_artifact(self, path: Path) -> Artifact:
        return self.artifact.derive(str(path), format=self.scheme.output_format, io=self._io(Path(path)))

    def compare_speed(self, a: Path, b: Path, title: str) -> dict[str, Any]:
        """b's throughput over a's, timed interleaved on the target's runtime."""
        from vopt.quant.speed import compare_speed

        with self.ctx.reporter.bar(title, None):
            return compare_speed(
                self.as_artifact(a),
                self.as_artifact(b),
                self.ctx,
                self.check_images,
                self.cfg.input_shape[0],
                self.cfg.check.rounds,
                compile_settings=self.cfg.compile,
            )

    def progress(self, title: str, total: int | None) -> Any:
        return self.ctx.reporter.bar(title, total)

    def warn(self, message: str) -> None:
        self.ctx.warn(message)

    def _load_images(self) -> None:
        if self.recorded is not None:  # a component: the calls recorded on the check's held-out prompts
            self.images = self.recorded.check
            return
        from vopt.datasets.images import ImageStats
        from vopt.quant.evaluate import eval_images

        stats = ImageStats()
        self.images = eval_images(self.cfg.check, self.pre, stats, self._check_files())
        self.image_stats = stats.report()
        for note in stats.warnings("quantize check"):
            self.ctx.warn(note)

    def evaluate(self, path: Path) -> dict[str, Any] | None:
        """Quantized vs float on validation images; None when the quantized artifact cannot run here."""
        from vopt.quant.evaluate import compare, headline, outputs_of
        from vopt.registry import get_format
        from vopt.validate.gates import evaluate

        fmt = self.scheme.output_format
        out, runtime = self._check_outputs(Path(path), fmt)
        if out is None:
            self.report["check"] = {"status": "not run", "reason": f"no runtime for {fmt} on this machine"}
            if self.cfg.gates:
                self.ctx.warn(f"quantize gates not checked: no runtime for {fmt} here")
            return None
        if self.ref is None:  # the float model on its own runtime (ONNX on ORT; a compiled .tflite on LiteRT)
            self.ref = outputs_of(Path(self.artifact.path), self.artifact.format, self.images)
            if self.ref is None:
                self.report["check"] = {
                    "status": "not run",
                    "reason": f"no runtime for the float {self.artifact.format} here",
                }
                return None
        metrics = compare(self.ref, out, skip=tuple(self.family.unordered_outputs))
        if self.recorded is not None:  # a UNet's noise is no class score: no argmax agreement
            for m in metrics["outputs"].values():
                m.pop("top1_agreement", None)
        tm = self._task_metrics(out)
        from vopt.validate.accuracy import evidence
        from vopt.validate.defaults import gates_for

        task = self.artifact.meta.get("task")
        if self.recorded is not None:  # a pipeline's component: its outputs against float's, no task metrics
            task = COMPONENT_TASK
            extra, intervals = {}, {}
        elif task == "object-detection":  # boxes against labels: mAP (vopt.validate.detection)
            from vopt.validate.detection import detection_evidence

            files = self._check_files()
            extra, intervals = detection_evidence(self.family, self.ref, out, files, self._labels())
        else:
            extra, intervals = evidence(task, self.ref, out, self._check_files(), self._labels())
        tm = {**tm, **extra}
        all_gates, defaults = gates_for(
            task,
            self.cfg.gates,
            self.cfg.default_gates,
            bool(self.artifact.meta.get("random_weights")),
            outputs=list(out),
        )
        if (
            tm.get("reference_detections") == 0
        ):  # vacuous box agreement (random weights): no default gate on it
            all_gates = {k: v for k, v in all_gates.items() if not (k == "box_agreement" and k in defaults)}
        gates = evaluate(
            all_gates,
            {"outputs": metrics["outputs"], **tm, "intervals": intervals},
            self.cfg.gate_mode,
            defaults,
        )
        ref_fmt = get_format(self.artifact.format)
        result = {
            "status": "ok",
            "images": len(self.images),
            **({"data": self.recorded.describe("check")} if self.recorded is not None else {}),
            "reference": f"float {ref_fmt.description} on {ref_fmt.check_label}",
            "runtime": runtime,
            "on_device": self.on_device,
            "metrics": metrics["outputs"],
            "worst": headline(metrics),
            "gates": gates,
            **getattr(self, "image_stats", {}),
        }
        if tm:
            result["task_metrics"] = tm
        if intervals:
            result["intervals"] = intervals
        return result

    def _check_outputs(self, path: Path, fmt: str) -> tuple[dict[str, Any] | None, str]:
        """The quantized model's outputs on the check images, and what ran it: where the target says the
        artifact computes what the device does (`Target.check_runner`, e.g. QNN's HTP simulator), else the
        format's own runtime at full precision. A device runtime missing here is said loudly, once."""
        from vopt.quant.evaluate import outputs_of
        from vopt.registry import get_format
        from vopt.runtimes.base import Feeds, Unavailable, run_batches, run_feeds

        runner = self.ctx.target.check_runner(path, self.cfg.compile)
        self.on_device = runner is None or not isinstance(runner, Unavailable)
        if runner is not None and not isinstance(runner, Unavailable):
            inp = get_format(fmt).io(path, self.artifact.io).inputs[0]
            with runner:
                if isinstance(self.check_images, Feeds):
                    out = run_feeds(runner, self.check_images.arrays, inp.shape[0])
                else:
                    out = run_batches(runner, inp.name, [self.check_images], static_batch=inp.shape[0])
            return out, runner.runtime
        if isinstance(runner, Unavailable) and "not on the device" not in self.ctx_notes:
            self.ctx_notes.add("not on the device")
            self.ctx.warn(
                f"quantize check NOT on the device: {runner.reason}; the check, the fallback and the search "
                f"ran on {get_format(fmt).check_label}, whose numbers can differ from the "
                f"{self.cfg.target} runtime's (validate runs the artifact there)"
            )
        return outputs_of(path, fmt, self.check_images), str(get_format(fmt).check_label)

    def _format_label(self) -> str:
        from vopt.registry import get_format

        return str(get_format(self.scheme.output_format).check_label)

    def _check_files(self) -> list[Path]:
        """The check's images: sampled from its held-out set, never calibration images
        (vopt.quant.heldout)."""
        if self.recorded is not None:  # recorded feeds, no image files
            return []
        if getattr(self, "check_files", None) is None:
            from vopt.quant.heldout import check_files

            self.check_files = check_files(self.cfg.check, self.cfg.heldout)
        return self.check_files

    def _labels(self) -> Any:
        if not hasattr(self, "labels"):
            from vopt.datasets.labels import find_labels

            data = self.cfg.check.data if self.cfg.check.data is not None else self.cfg.calibration.data
            if self.artifact.meta.get("task") == "object-detection":  # YOLO txt or COCO JSON boxes
                from vopt.datasets.detection_labels import find_detection_labels

                self.labels = find_detection_labels(
                    data, self._check_files(), list(self.artifact.preprocess.size), self.cfg.check.labels
                )
                return self.labels
            self.labels = find_labels(
                data, self._check_files(), self.cfg.check.labels, "quantize.check.labels"
            )
        return self.labels

    def _evidence_notes(self, calib: Any) -> None:
        """What the check measured on, and what its numbers can and cannot say: the report and the build
        output."""
        from vopt.datasets.split import manifest_list
        from vopt.validate.accuracy import RANDOM_NOTE, accuracy_line
        from vopt.validate.confidence import gate_notes

        held = self.cfg.heldout or {}
        for w in held.get("warnings", []):
            self.ctx.warn(w)
        check = self.report.get("check", {})
        data: dict[str, Any] = {"how": held.get("how"), "split": held.get("split")}
        if self.recorded is not None:  # prompts, not images: calibration's and the check's are disjoint
            data = {
                "how": "the pipeline's own inputs, recorded in PyTorch; the check's prompts held out from "
                "calibration's, and both from validate.pipeline.prompts",
                "calibration": self.recorded.describe("calibration"),
                "check": self.recorded.describe("check"),
                "calibration_prompts": self.recorded.prompts("calibration"),
                "check_prompts": self.recorded.prompts("check"),
            }
        if calib.kind == "images":
            data["calibration_images"] = manifest_list(calib.files())
        if getattr(self, "check_files", None):
            data["check_images"] = manifest_list(self.check_files)
        labels = getattr(self, "labels", None)
        data["labels"] = labels.source if labels is not None else None
        self.report["data"] = data
        if check.get("status") != "ok":
            return
        if held.get("split"):
            self.ctx.reporter.info(f"quantize check: {held['how']}")
        tm = check.get("task_metrics") or {}
        if "top1_drop" in tm:
            check["accuracy"] = accuracy_line(tm, check["intervals"])
        if "map50_95_drop" in tm:
            from vopt.validate.detection_map import map_line

            check["accuracy"] = map_line(tm, check["intervals"])
        if self.artifact.meta.get("random_weights") and self.recorded is None:  # a note on class scores
            check["note"] = RANDOM_NOTE
        for note in gate_notes(
            [
                g
                for g in check.get("gates", [])
                if not (g.get("default") and "needs_images" in g and not g.get("straddles"))
            ],
            "quantize",
        ):
            self.ctx.warn(note)

    def _task_metrics(self, out: dict[str, Any]) -> dict[str, Any]:
        """Detection: matched-box agreement (query order means nothing), as validate measures it;
        classification:
        top-1/top-5 agreement and KL."""
        task = self.artifact.meta.get("task")
        if task not in ("object-detection", "image-classification", None):
            return {}
        from vopt.validate.tasks import task_metrics

        tm, notes = task_metrics(task, self.family, self.ref, out, self.cfg.score_threshold)
        for note in notes:
            if note not in self.ctx_notes:
                self.ctx_notes.add(note)
                self.ctx.warn(f"quantize check: {note}")
        return tm

    def _why_slow(self) -> str:
        """The build machine's reason, when it has one: int8 kernels without VNNI gain little over fp32."""
        if not self.cfg.host.get("int8_saturates"):
            return ""
        # measured in docs/benchmarks.md (cpu_anchors on an AMD EPYC): there, ViT-B/16 int8 ran 1.8x faster
        # on the cpu target than on openvino, whose int8 FullyConnected is slower than f32
        return (
            "; this CPU has no VNNI, so its int8 kernels gain little over fp32, and some run slower "
            "(docs/benchmarks.md compares the targets on such a CPU)"
        )

    def speed(self, float_model: Path, quant: Artifact) -> None:
        from vopt.quant.speed import compare_speed

        cfg = self.cfg
        if not cfg.check.benchmark:
            return
        # The float side in its own format: the prepared ONNX, or the compiled float artifact (quantize after
        # compile).
        float_art = self.artifact.derive(float_model)  # a scheme's prepare() keeps the artifact's format
        with self.ctx.reporter.bar("speed: quantized vs float", None):
            sp = compare_speed(
                float_art,
                quant,
                self.ctx,
                self.check_images,
                cfg.input_shape[0],
                cfg.check.rounds,
                compile_settings=cfg.compile,
            )
        self.report["speed"] = sp
        if sp["status"] != "ok":
            if cfg.require_speedup:
                self.ctx.warn(f"require_speedup not checked: {sp['reason']}")
            elif sp["status"] == "inconclusive" and sp["speedup"] < 1:
                # undecided, but slower on the estimate: say so rather than leave it in the manifest only
                self.ctx.warn(f"{cfg.precision.upper()} may not pay: {sp['reason']}{self._why_slow()}")
            return
        label = cfg.precision.upper()
        if not sp["paid"]:
            sp["verdict"] = (
                f"{label} did not pay: {sp['quantized_img_s']} img/s vs {sp['float_img_s']} img/s float "
                f"on {sp['runtime']} ({sp['speedup']:.2f}x)"
            )
            self.ctx.warn(sp["verdict"] + self._why_slow())
        else:
            sp["verdict"] = f"{label} is {sp['speedup']:.2f}x faster than float on {sp['runtime']}"
        if cfg.require_speedup is not None:
            self.report.setdefault("gates", []).append(
                {
                    "metric": "speedup",
                    "value": sp["speedup"],
                    "condition": f">={cfg.require_speedup}",
                    "threshold": cfg.require_speedup,
                    "passed": sp["speedup"] >= cfg.require_speedup,
                }
            )

    # -- helpers ------------------------------------------------------------------------------
    def _io(self, out: Path) -> dict[str, Any]:
        """Inputs and outputs as the written model has them (e.g. the static batch the QDQ schemes pin)."""
        from vopt.registry import get_format

        return get_format(self.scheme.output_format).io(out, self.artifact.io).model_dump()

    def _metadata(self, out: Path, quant: Artifact, kept: list[str]) -> None:
        from vopt.registry import get_format

        fmt = get_format(quant.format)
        if not fmt.writes_metadata:
            return
        from vopt.targets.metadata import artifact_metadata

        meta = artifact_metadata(quant, self.ctx.recipe.name, self.cfg.target, self.cfg.precision)
        meta["vopt.quantize.scheme"] = self.cfg.scheme
        # Everything kept in float, whether the recipe or the fallback chose it: a written-back recipe
        # then rebuilds the same bytes.
        wide = fallback_to(self) == "int16" if kept and self.cfg.search is None else False
        float_nodes = {*([] if wide else kept), *self.cfg.exclude.nodes}
        meta["vopt.quantize.float_nodes"] = json.dumps(sorted(float_nodes))
        recipe_int16 = getattr(self.scheme.options, "int16_nodes", [])
        int16 = sorted({*(kept if wide else []), *self.kept_int16, *recipe_int16})
        if int16:
            meta["vopt.quantize.int16_nodes"] = json.dumps(int16)
        cal = self.report.get("calibration", {})
        if cal:
            keys = ("kind", "samples", "seed", "method", "fingerprint")
            meta["vopt.quantize.calibration"] = json.dumps({k: cal[k] for k in keys})
        fmt.set_metadata(out, meta)

    def _summary(self, kept: list[str]) -> None:
        r = self.report
        parts = [f"{self.cfg.scheme} {self.cfg.precision}"]
        check = r.get("check", {})
        if check.get("status") == "ok":
            w = check.get("worst") or {}
            if "cosine" in w and self.recorded is not None:  # a component: its outputs against float's
                parts.append(f"cosine {w['cosine']:.4f}, SQNR {w.get('sqnr_db', float('nan')):.1f} dB")
            elif "cosine" in w:
                parts.append(
                    f"cosine {w['cosine']:.4f}"
                    + (f", centered {w['centered_cosine']:.4f}" if "centered_cosine" in w else "")
                )
            tm = check.get("task_metrics") or {}
            if "box_agreement" in tm:
                parts.append(
                    f"box agreement {tm['box_agreement']:.3f} ({tm['reference_detections']} detections)"
                )
            iv = check.get("intervals") or {}
            if "top1_agreement" in tm and "top1_agreement" in iv:
                from vopt.validate.stats import format_rate

                a = iv["top1_agreement"]
                parts.append(f"top-1 agreement {format_rate(tm['top1_agreement'], a['n'], a['ci95'])}")
            if "position_agreement" in tm:
                from vopt.validate.sequence import sequence_line

                parts.append(sequence_line(tm))
            if "top1_drop" in tm:
                d = iv["top1_drop"]["ci95"]
                parts.append(
                    f"top-1 {100 * tm['reference_top1_accuracy']:.1f}% -> {100 * tm['top1_accuracy']:.1f}% "
                    f"(drop {tm['top1_drop']:+.1f} pt, 95% CI {d[0]:+.1f}..{d[1]:+.1f})"
                )
            if check.get("on_device") is False:
                parts.append(f"check NOT on the device ({check['runtime']})")
            elif check.get("runtime") != self._format_label():
                parts.append(f"checked on {check['runtime']}")
        if self.speed_floats:
            parts.append(f"{len(self.speed_floats)} layer(s) kept float for speed")
        if kept:
            parts.append(f"{len(kept)} layer(s) kept {self.report.get('fallback', {}).get('to', 'float')}")
        if self.kept_int16:
            parts.append(f"{len(self.kept_int16)} layer(s) with 16-bit activations")
        changed = self.report.get("search", {}).get("changed_settings")
        if changed:
            parts.append("search: " + ", ".join(f"{k} {v}" for k, v in changed.items()))
        sp = r.get("speed", {})
        if sp.get("status") == "ok":
            parts.append(f"{sp['speedup']:.2f}x vs float" + ("" if sp["paid"] else " (did NOT pay)"))
        elif sp.get("status") == "inconclusive":
            low, high = sp["speedup_ci95"]
            parts.append(f"{sp['speedup']:.2f}x vs float (inconclusive: 95% CI {low:.2f}-{high:.2f}x)")
        if r.get("calibration", {}).get("synthetic"):
            parts.append("SYNTHETIC calibration")
        r["summary"] = ", ".join(parts)


def _move(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst) if dst.is_dir() else dst.unlink()
    shutil.move(str(src), str(dst))
