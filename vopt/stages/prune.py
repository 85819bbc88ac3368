"""prune: structural pruning (torch-pruning, group magnitude importance, attention heads for ViT-style
models) with measured params and MACs before and after; or unstructured magnitude pruning."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.errors import BuildError, RecipeError
from vopt.pipeline.artifact import Artifact
from vopt.stages.base import Stage


class PruneConfig(BaseModel):
    method: str
    ratio: float
    ignore: list[str]
    prune_heads: bool
    global_pruning: bool
    input_shape: list[int]


class PruneStage(Stage):
    name = "prune"
    tools = ("torch", "torch-pruning")

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> PruneConfig | None:
        if recipe.prune is None or recipe.model.source == "onnx":
            return None
        if recipe.model.source in ("torchscript", "exported"):
            raise RecipeError(f"prune: {recipe.model.source} models are fixed graphs and cannot be pruned; "
                              "prune the eager model (source: python or torch) instead")
        p = recipe.prune
        return PruneConfig(method=p.method, ratio=p.ratio, ignore=p.ignore, prune_heads=p.prune_heads,
                           global_pruning=p.global_pruning, input_shape=[1, *recipe.model.input.shape[1:]])

    def run(self, artifact: Artifact, config: PruneConfig, ctx) -> Artifact:
        import torch

        from vopt.models.prune import PruneFailed, structured, unstructured
        from vopt.models.resolve import OutputWrapper, family_of, load_module, save_module

        family = family_of(artifact)
        model = load_module(artifact)
        ignore = [*family.prune_ignore, *config.ignore]
        if config.method == "structured":
            example = torch.randn(*config.input_shape, generator=torch.Generator().manual_seed(0))
            kw = {"ratio": config.ratio, "ignore": ignore, "prune_heads": config.prune_heads,
                  "global_pruning": config.global_pruning}
            with ctx.reporter.bar(f"prune: structured, ratio {config.ratio}", None):
                try:
                    report = structured(model, OutputWrapper.wrap(model, family), example, **kw)
                except PruneFailed as exc:
                    # Retry on a fresh copy, pruning only MLP widths, which never touch the residual stream.
                    ctx.warn(f"full structural pruning failed ({exc}); pruned MLP hidden widths only")
                    model = load_module(artifact)
                    try:
                        report = structured(model, OutputWrapper.wrap(model, family), example, mlp_only=True, **kw)
                    except PruneFailed as again:
                        raise BuildError(f"{again}; list the failing modules in prune.ignore, or drop prune:",
                                         stage="prune") from None
                    report["fallback"] = str(exc)
            summary = (f"{report['scope']}: params {report['params_before'] / 1e6:.2f}M -> {report['params_after'] / 1e6:.2f}M "
                       f"({report['params_reduction']:.2f}x), MACs {report['macs_before'] / 1e9:.3g}G -> "
                       f"{report['macs_after'] / 1e9:.3g}G ({report['macs_reduction']:.2f}x)")
        else:
            report = unstructured(model, ratio=config.ratio, ignore=ignore, global_pruning=config.global_pruning)
            ctx.warn(report["note"])
            summary = f"{report['sparsity']:.0%} of weights zeroed in {report['layers']} layers (no speedup)"
        ctx.report.update(report)
        ctx.report["summary"] = summary
        path = ctx.out("model.pt")
        save_module(model, path)
        return artifact.derive(path, meta={"pruned": {k: report[k] for k in ("method", "ratio", "params_after")}})
