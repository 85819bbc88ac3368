"""fuse: fold BatchNorm into the preceding convolution, and switch to channels_last where it measurably
helps."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from vopt.core.artifact import Artifact
from vopt.errors import BuildError
from vopt.stages.base import Stage, loads_torch_module

# A folded model must match the unfolded one this closely on real images, or the fold was wrong.
MIN_COSINE = 0.99999


class FuseConfig(BaseModel):
    conv_bn: bool
    channels_last: bool
    input_shape: list[int]


class FuseStage(Stage):
    name = "fuse"
    tools = ("torch",)

    @classmethod
    def configure(cls, recipe: Any, target: Any) -> FuseConfig | None:
        if recipe.fuse is None or not loads_torch_module(recipe):
            return None
        return FuseConfig(
            conv_bn=recipe.fuse.conv_bn,
            channels_last=recipe.fuse.channels_last,
            input_shape=recipe.model.input.shape,
        )

    def run(self, artifact: Artifact, config: FuseConfig, ctx) -> Artifact:
        import torch

        from vopt.datasets.images import load_batch
        from vopt.models.fuse import find_conv_bn_pairs, fold
        from vopt.models.resolve import OutputWrapper, family_of, is_graph_only, load_module, save_module
        from vopt.validate.metrics import cosine, max_abs_diff

        model = load_module(artifact)
        if is_graph_only(artifact):
            ctx.warn(f"{artifact.meta.get('source')} models are fixed graphs: nothing fused")
            ctx.report["summary"] = "skipped (fixed graph)"
            return artifact.derive(artifact.path)  # a copy: the engine stamps lineage on what it gets back
        family = family_of(artifact)
        wrapped = OutputWrapper.wrap(model, family)
        # A component of several named inputs (a UNet: sample, timestep, text states) is checked on its
        # family's example inputs; every other model on two real images.
        named = family.example_inputs(model, config.input_shape)
        if named is not None:
            args = tuple(torch.from_numpy(v) for v in named.values())
        else:
            args = (torch.from_numpy(load_batch(None, artifact.preprocess, 2)),)

        def call(inputs: tuple) -> Any:
            return wrapped(*inputs)

        with torch.no_grad():
            before = [t.detach().clone() for t in call(args)]
        fused: list[tuple[str, str]] = []
        if config.conv_bn:
            with torch.no_grad():
                found = find_conv_bn_pairs(model, args, call)
            fold(model, found.fused)
            fused = found.fused
            ctx.report.update(
                conv_bn_fused=len(fused),
                pairs=[f"{c} + {b}" for c, b in fused],
                batchnorm_left=found.unfused_bn,
            )
        with torch.no_grad():
            after = call(args)
        worst = min(cosine(b.numpy(), a.detach().numpy()) for b, a in zip(before, after, strict=True))
        diff = max(max_abs_diff(b.numpy(), a.detach().numpy()) for b, a in zip(before, after, strict=True))
        ctx.report.update(check={"cosine": worst, "max_abs_diff": diff, "images": 0 if named else 2})
        if worst < MIN_COSINE:
            raise BuildError(
                f"folding changed the model's outputs (cosine {worst:.6f}, max abs {diff:.3g}); "
                "set fuse.conv_bn: false",
                stage="fuse",
            )
        summary = f"{len(fused)} conv+bn folded" if config.conv_bn else "conv+bn folding off"
        if config.channels_last and named is None:
            summary += ", " + self._channels_last(model, wrapped, args[0], ctx)
        from vopt.models import store

        path = ctx.out("model.safetensors")
        kept = bool(ctx.report.get("channels_last", {}).get("applied"))
        ref = store.edited(artifact.meta["module_ref"], load_module(artifact), model, channels_last=kept)
        saved = save_module(model, path, ref)
        ctx.report["params"] = sum(p.numel() for p in model.parameters())
        ctx.report["summary"] = summary + f" (max abs change {diff:.2g})"
        return artifact.derive(path, meta={"fused": len(fused), **saved})

    @staticmethod
    def _channels_last(model, wrapped, images, ctx) -> str:
        """Keep channels_last only when eager PyTorch gets faster with it (it never changes the ONNX
        graph)."""
        import torch

        if not any(isinstance(m, torch.nn.Conv2d) for m in model.modules()):
            ctx.report["channels_last"] = {"applied": False, "reason": "no convolutions"}
            return "channels_last not applicable"
        t_first = time_ms(wrapped, images)
        model.to(memory_format=torch.channels_last)
        t_cl = time_ms(wrapped, images.contiguous(memory_format=torch.channels_last))
        keep = t_cl < t_first
        if not keep:
            model.to(memory_format=torch.contiguous_format)
        ctx.report["channels_last"] = {
            "applied": keep,
            "eager_ms_nchw": t_first,
            "eager_ms_channels_last": t_cl,
            "note": "PyTorch eager only; ONNX export is layout-agnostic",
        }
        return f"channels_last {'kept' if keep else 'dropped'} ({t_first:.1f} -> {t_cl:.1f} ms eager)"


def time_ms(call, images) -> float:
    from vopt.models.fuse import time_forward

    return round(time_forward(call, images) * 1000, 3)
