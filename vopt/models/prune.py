"""Structural pruning with torch-pruning (group magnitude importance), attention-head aware, and
unstructured magnitude pruning (which gives no speedup without sparse kernels)."""

from __future__ import annotations

import fnmatch
from typing import Any

from vopt.errors import BuildError, first_line, missing_extra

_QKV = (("q_proj", "k_proj", "v_proj"), ("query", "key", "value"))
_HEAD_ATTRS = ("num_attention_heads", "num_heads")


def matching(model: Any, globs: list[str] | tuple[str, ...]) -> list[tuple[str, Any]]:
    """Modules whose dotted name matches a glob; a match takes its whole subtree."""
    out = []
    for name, mod in model.named_modules():
        if name and any(
            fnmatch.fnmatchcase(name, g) or fnmatch.fnmatchcase(name.split(".")[-1], g) for g in globs
        ):
            out.append((name, mod))
    return out


def output_layers(model: Any, call: Any, example: Any) -> list[str]:
    """Linear/Conv layers whose output is exactly a model output: their size is the task's contract."""
    import torch

    produced: dict[int, tuple[str, Any]] = {}
    handles = []
    for name, mod in model.named_modules():
        if isinstance(mod, (torch.nn.Linear, torch.nn.Conv2d)):
            handles.append(
                mod.register_forward_hook(lambda m, i, o, name=name: produced.__setitem__(id(o), (name, o)))
            )
    try:
        with torch.no_grad():
            outs = call(example)
    finally:
        for h in handles:
            h.remove()
    names = []
    for t in outs if isinstance(outs, (tuple, list)) else [outs]:
        hit = produced.get(id(t))
        if hit is not None and hit[1] is t:
            names.append(hit[0])
    return names


def attention_modules(model: Any) -> list[tuple[Any, tuple[Any, Any, Any], str]]:
    """(attention module, (q, k, v) linears, heads attribute) for ViT-style self-attention."""
    import torch

    found = []
    for mod in model.modules():
        attr = next((a for a in _HEAD_ATTRS if isinstance(getattr(mod, a, None), int)), None)
        if attr is None:
            continue
        for names in _QKV:
            layers = [getattr(mod, n, None) for n in names]
            if all(isinstance(layer, torch.nn.Linear) for layer in layers):
                found.append((mod, tuple(layers), attr))
                break
    return found


SCOPES = {
    "full": "all channels",
    "backbone+mlp": "CNN backbone channels and MLP hidden width",
    "mlp": "MLP hidden width only",
}


class PruneFailed(Exception):
    """torch-pruning could not prune this model consistently (the model may be half-edited: reload it)."""


def structured(
    model: Any,
    call: Any,
    example: Any,
    *,
    ratio: float,
    ignore: list[str],
    prune_heads: bool,
    global_pruning: bool,
    scope: str = "full",
) -> dict[str, Any]:
    """Prune channels/heads. The narrower scopes are fallbacks for transformers whose residual width is tied
    to things torch-pruning cannot see (computed position embeddings, relative position tables, layer scales):
    `backbone+mlp` prunes convolutions inside a CNN backbone and MLP hidden widths; `mlp` only the latter."""
    import torch

    try:
        import torch_pruning as tp
    except ImportError:
        raise missing_extra("torch-pruning", "prune", "structural pruning") from None

    # torch-pruning follows the autograd graph: frozen layers (DETR freezes its backbone's stem) would be
    # invisible.
    for param in model.parameters():
        param.requires_grad_(True)
    ignored_names = sorted({n for n, _ in matching(model, ignore)} | set(output_layers(model, call, example)))
    modules = dict(model.named_modules())
    ignored = [modules[n] for n in ignored_names]
    attn = attention_modules(model) if scope == "full" else []
    if scope != "full":

        def keep(name: str, m: Any) -> bool:
            if isinstance(m, torch.nn.Linear):
                return m.out_features > m.in_features  # an MLP expansion: its width is internal
            return scope == "backbone+mlp" and ".backbone." in f".{name}."

        ignored += [
            m
            for n, m in modules.items()
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and not keep(n, m)
        ]
        if not any(isinstance(m, torch.nn.Conv2d) and keep(n, m) for n, m in modules.items()):
            scope = "mlp"  # no CNN backbone here: say what was really pruned
    num_heads = {layer: getattr(mod, attr) for mod, qkv, attr in attn for layer in qkv}
    heads_before = sum(getattr(mod, attr) for mod, _, attr in attn)
    wrapper = call  # the output wrapper: an nn.Module holding `model`, so the pruner edits the real layers
    macs0, params0 = tp.utils.count_ops_and_params(wrapper, example)
    try:
        pruner = tp.pruner.MetaPruner(
            wrapper,
            example,
            importance=tp.importance.GroupMagnitudeImportance(p=2),
            pruning_ratio=ratio,
            ignored_layers=ignored,
            global_pruning=global_pruning,
            num_heads=num_heads,
            prune_num_heads=prune_heads and bool(num_heads),
            prune_head_dims=not prune_heads,
            head_pruning_ratio=ratio if prune_heads else 0.0,
            output_transform=lambda out: sum(
                t.float().sum() for t in (out if isinstance(out, tuple) else (out,))
            ),
        )
        pruner.step()
    except BuildError:
        raise
    except Exception as exc:
        raise PruneFailed(f"torch-pruning failed: {_first_line(exc)}") from None
    for mod, qkv, attr in attn:  # the attention code reads these to reshape q/k/v
        heads = pruner.num_heads.get(qkv[0], getattr(mod, attr))
        if heads < 1 or qkv[0].out_features % heads:
            raise PruneFailed(f"attention heads cannot be pruned consistently ({heads} heads left)")
        setattr(mod, attr, heads)
        for dim_attr in ("head_dim", "attention_head_size"):
            if isinstance(getattr(mod, dim_attr, None), int):
                setattr(mod, dim_attr, qkv[0].out_features // heads)
        if isinstance(getattr(mod, "all_head_size", None), int):
            mod.all_head_size = qkv[0].out_features
    try:
        with torch.no_grad():
            call(example)  # fails here, not at export, if a shape no longer fits
    except Exception as exc:
        raise PruneFailed(f"the pruned model no longer runs: {_first_line(exc)}") from None
    macs1, params1 = tp.utils.count_ops_and_params(wrapper, example)
    heads_after = sum(getattr(mod, attr) for mod, _, attr in attn)
    return {
        "method": "structured",
        "ratio": ratio,
        "importance": "group magnitude (L2)",
        "params_before": int(params0),
        "params_after": int(params1),
        "params_reduction": params0 / max(params1, 1),
        "macs_before": int(macs0),
        "macs_after": int(macs1),
        "macs_reduction": macs0 / max(macs1, 1),
        "macs_input_shape": list(example.shape),
        "ignored_layers": ignored_names,
        "attention_heads_before": heads_before,
        "attention_heads_after": heads_after,
        "scope": SCOPES[scope] + (", attention heads" if attn else ""),
    }


def _first_line(exc: Exception) -> str:
    return first_line(exc, with_type=True)


def unstructured(model: Any, *, ratio: float, ignore: list[str], global_pruning: bool) -> dict[str, Any]:
    import torch
    from torch.nn.utils import prune

    skip = {id(m) for _, m in matching(model, ignore)}
    params = [
        (m, "weight")
        for m in model.modules()
        if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d)) and id(m) not in skip
    ]
    if global_pruning:
        prune.global_unstructured(params, pruning_method=prune.L1Unstructured, amount=ratio)
    else:
        for m, name in params:
            prune.l1_unstructured(m, name, amount=ratio)
    for m, name in params:
        prune.remove(m, name)
    total = sum(m.weight.numel() for m, _ in params)
    zeros = sum(int((m.weight == 0).sum()) for m, _ in params)
    n_params = sum(p.numel() for p in model.parameters())
    return {
        "method": "unstructured",
        "ratio": ratio,
        "layers": len(params),
        "weights_zeroed": zeros,
        "sparsity": zeros / max(total, 1),
        "params_before": n_params,
        "params_after": n_params,
        "params_reduction": 1.0,
        "note": "unstructured sparsity gives NO speedup and no size reduction without sparse kernels: "
        "the exported ONNX is dense, same size and latency",
    }
