"""Gates: `metric: ">=0.99"` conditions checked against measured numbers."""

from __future__ import annotations

import operator
from typing import Any

from vopt.errors import RecipeError
from vopt.recipe.sections.base import CONDITION

_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "==": operator.eq}
# For metrics reported per output, the gate checks the worst output.
LOWER_IS_BETTER = {"max_abs_diff", "kl_divergence", "mean_abs_diff"}


def parse_condition(cond: str, where: str = "gates") -> tuple[str, float]:
    m = CONDITION.match(str(cond))
    if not m:
        raise RecipeError(f"{where}: bad condition '{cond}': use e.g. '>=0.99' or '<1e-3'")
    return m.group(1), float(m.group(2))


def worst(metric: str, values: list[float]) -> float:
    return max(values) if metric in LOWER_IS_BETTER else min(values)


def lookup(metric: str, metrics: dict[str, Any]) -> float | None:
    """`cosine` takes the worst over outputs; `logits.cosine` picks one output; top-level numbers match
    directly."""
    if metric in metrics and isinstance(metrics[metric], (int, float)):
        return float(metrics[metric])
    if "." in metric:
        out_name, _, name = metric.partition(".")
        value = metrics.get("outputs", {}).get(out_name, {}).get(name)
        return None if value is None else float(value)
    outputs = metrics.get("outputs", {}).values()
    values = [m[metric] for m in outputs if isinstance(m.get(metric), (int, float))]
    return worst(metric, values) if values else None


def evaluate(
    gates: dict[str, str],
    metrics: dict[str, Any],
    mode: str = "estimate",
    optional: frozenset[str] | set[str] = frozenset(),
) -> list[dict[str, Any]]:
    """Check each gate. Rates that carry an interval (`metrics["intervals"][metric]`: n and ci95) say whether
    the interval straddles the threshold; `mode: lower_bound` passes only when the pessimistic end of the
    interval passes. Gates in `optional` (the task defaults) are skipped when their metric was not
    measured."""
    from vopt.validate.confidence import EXCLUDES, annotate, unresolved
    from vopt.validate.defaults import DECIDED_BY_INTERVAL

    results = []
    for metric, cond in gates.items():
        op, threshold = parse_condition(cond, f"gates.{metric}")
        value = lookup(metric, metrics)
        if value is None:
            if metric in optional:
                continue
            known = sorted(
                {k for m in metrics.get("outputs", {}).values() for k in m} | set(metrics) - {"intervals"}
            )
            raise RecipeError(f"gates.{metric}: no such metric was measured; measured: {', '.join(known)}")
        result = {
            "metric": metric,
            "value": value,
            "condition": cond,
            "threshold": threshold,
            "passed": bool(_OPS[op](value, threshold)),
        }
        interval = (metrics.get("intervals") or {}).get(metric)
        gate_mode = mode
        if metric in optional:
            result["default"] = True
            # A default fails when the images show it past its threshold: always for a loss, and for a rate
            # whose check has too few images to resolve the threshold (else its estimate decides).
            if metric in DECIDED_BY_INTERVAL or (mode == "estimate" and unresolved(op, threshold, interval)):
                gate_mode = EXCLUDES
        results.append(annotate(result, op, interval, gate_mode))
    return results
