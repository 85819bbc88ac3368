"""prune: structural pruning (torch-pruning, group magnitude importance, attention heads for ViT-style
models) with measured params and MACs before and after; or unstructured magnitude pruning."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact
from vopt.errors import BuildError, RecipeError
from vopt.stages.base import Stage, loads_torch_module


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
        if recipe.prune is None or not loads_torch_module(recipe):
            return None
        if recipe.model.source in ("torchscript", "exported"):
            raise RecipeError(
                f"prune: {recipe.model.source} models are fixed graphs and cannot be pruned; "
                "prune the eager model (source: python or torch) instead"
            )
        p = recipe.prune
        return PruneConfig(
            method=p.method,
            ratio=p.ratio,
            ignore=p.ignore,
            prune_heads=p.prune_heads,
            global_pruning=p.global_pruning,
            input_shape=[1, *recipe.model.input.shape[1:]],
        )

    def run(self, artifact: Artifact, config: PruneConfig, ctx) -> Artifact:
        import torch

        from vopt.models.prune import unstructured
        from vopt.models.resolve import family_of, load_module, save_module

        family = family_of(artifact)
        model = load_module(artifact)
        ignore = [*family.prune_ignore, *config.ignore]
        if config.method == "structured":
            example = torch.randn(*config.input_shape, generator=torch.Generator().manual_seed(0))
            kw = {
                "ratio": config.ratio,
                "ignore": ignore,
                "prune_heads": config.prune_heads,
                "global_pruning": config.global_pruning,
            }
            with ctx.reporter.bar(f"prune: structured, ratio {config.ratio}", None):
                model, report = self._structured(model, artifact, family, example, kw, ctx)
            summary = (
                f"{report['scope']}: params {report['params_before'] / 1e6:.2f}M -> "
                f"{report['params_after'] / 1e6:.2f}M "
                f"({report['params_reduction']:.2f}x), MACs {report['macs_before'] / 1e9:.3g}G -> "
                f"{report['macs_after'] / 1e9:.3g}G ({report['macs_reduction']:.2f}x)"
            )
        else:
            report = unstructured(
                model, ratio=config.ratio, ignore=ignore, global_pruning=config.global_pruning
            )
            ctx.warn(report["note"])
            summary = f"{report['sparsity']:.0%} of weights zeroed in {report['layers']} layers (no speedup)"
        ctx.report.update(report)
        ctx.report["summary"] = summary
        from vopt.models import store

        path = ctx.out("model.safetensors")
        ref = artifact.meta["module_ref"]
        saved = save_module(
            model,
            path,
            store.edited(ref, load_module(artifact), model, channels_last=bool(ref.get("channels_last"))),
        )
        return artifact.derive(
            path, meta={"pruned": {k: report[k] for k in ("method", "ratio", "params_after")}, **saved}
        )

    @staticmethod
    def _structured(model, artifact, family, example, kw, ctx) -> tuple[Any, dict[str, Any]]:
        """Full pruning, else narrower scopes on a fresh copy of the model (a failed attempt leaves it
        half-edited)."""
        from vopt.models.prune import PruneFailed, structured
        from vopt.models.resolve import OutputWrapper, load_module

        failures: list[str] = []
        for scope in ("full", "backbone+mlp", "mlp"):
            if failures:
                model = load_module(artifact)
            frozen = _fold_frozen_bn(model, OutputWrapper.wrap(model, family), example)
            try:
                report = structured(model, OutputWrapper.wrap(model, family), example, scope=scope, **kw)
            except PruneFailed as exc:
                failures.append(f"{scope}: {exc}")
                continue
            if frozen:
                report["frozen_batchnorms_folded"] = frozen
            if failures:
                ctx.warn(f"full structural pruning failed ({failures[0]}); pruned {report['scope']}")
                report["fallback"] = failures
            return model, report
        raise BuildError(
            f"structural pruning failed ({'; '.join(failures)}); list the failing modules in "
            "prune.ignore, or drop prune:",
            stage="prune",
        )


def _fold_frozen_bn(model: Any, call: Any, example: Any) -> int:
    """torch-pruning does not know transformers' FrozenBatchNorm2d (DETR, RT-DETR backbones): fold those
    into their convolutions first, as the fuse stage would, so the backbone can be pruned."""
    import torch

    from vopt.models.fuse import find_conv_bn_pairs, fold

    with torch.no_grad():
        pairs = [
            (c, b)
            for c, b in find_conv_bn_pairs(model, example, call).fused
            if type(dict(model.named_modules())[b]).__name__.endswith("FrozenBatchNorm2d")
        ]
    fold(model, pairs)
    return len(pairs)
