"""`auto_fallback`: rank the quantized layers by sensitivity, then move the worst to float (or to 16-bit
activations, where the scheme has them) a few at a time until the quantize gates hold, within
`max_float_fraction`. It drives the step only through vopt.quant.protocol.QuantizeSession."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from vopt.errors import GateFailed
from vopt.quant.protocol import CheckResult, LoopResult, QuantizeSession


def passed(gates: list[dict[str, Any]]) -> bool:
    return all(g["passed"] for g in gates)


def gate_values(gates: list[dict[str, Any]]) -> dict[str, float]:
    return {g["metric"]: round(g["value"], 6) for g in gates}


def fallback_to(session: QuantizeSession) -> str:
    """What the fallback moves layers to: options.fallback_to, one of the scheme's fallback_precisions
    (checked when the recipe loads)."""
    return str(getattr(session.scheme.options, "fallback_to", "float"))


def run_fallback(session: QuantizeSession, model: Path, first: Path, checked: CheckResult) -> LoopResult:
    """Worst layers first, `fallback_step` at a time, until the gates hold; exit 3 with the sensitivity table
    when the budget is spent."""
    from vopt.quant.sensitivity import table_lines
    from vopt.validate.confidence import failure_line, unresolved_aim

    cfg, scheme = session.cfg, session.scheme
    note = unresolved_aim(checked["gates"], "auto_fallback")
    if note:
        session.warn(note)
    with session.progress("rank layer sensitivity", None):
        candidates, table = scheme.rank(
            model,
            first,
            session.calib,
            cfg.check.sensitivity_samples,
            str(cfg.options.get("rank_by", "drop")),
        )
    if cfg.options.get("rank_by") == "measured":
        table = measured_ranking(session, model, table)
    budget = math.floor(cfg.max_float_fraction * len(candidates))
    order = [r["node"] for r in table]
    to = fallback_to(session)
    history = [{f"kept_{to}": 0, **gate_values(checked["gates"])}]
    kept: list[str] = []
    result = first
    while not passed(checked["gates"]):
        nxt = order[len(kept) : len(kept) + cfg.fallback_step]
        if not nxt or len(kept) + len(nxt) > budget:
            failing = [g for g in checked["gates"] if not g["passed"]]
            lines = [failure_line(g, "quantize") for g in failing]
            lines.append(
                f"fallback spent its budget: {len(kept)} of {len(candidates)} quantized layers kept in {to} "
                f"(max_float_fraction {cfg.max_float_fraction}); sensitivity, worst first:"
            )
            lines += table_lines(table, kept, to)
            raise GateFailed(
                "quantize gate failed after auto_fallback",
                lines=lines,
                failures=[{**g, "stage": "quantize"} for g in failing],
            )
        kept = [*kept, *nxt]
        with session.progress(f"fallback: {len(kept)} layer(s) in {to}", None):
            result = scheme.quantize(model, kept, scheme.work / f"fallback_{len(kept)}.onnx")
        checked = session.evaluate(result) or checked
        history.append({f"kept_{to}": len(kept), **gate_values(checked["gates"])})
    return LoopResult(
        path=result,
        float_layers=kept,
        check=checked,
        report=_report(table, kept, candidates, budget, history, to),
    )


def measured_ranking(
    session: QuantizeSession, model: Path, table: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Rank by what keeping each layer alone in float does to the first gate's metric (one re-quantization
    per layer, from the cached ranges): slower than the SQNR ranking, but it measures the real effect."""
    from vopt.validate.gates import LOWER_IS_BETTER

    gate = session.cfg.gates and next(iter(session.cfg.gates))
    key = "alone_float_" + str(gate)
    with session.progress("measure each layer in float", len(table)) as advance:
        for row in table:
            path = session.scheme.quantize(model, [row["node"]], session.scheme.work / "measure.onnx")
            res = session.evaluate(path)
            value = next(g["value"] for g in res["gates"] if g["metric"] == gate) if res else float("nan")
            row[key] = round(value, 6)
            advance(1)
    sign = 1 if gate in LOWER_IS_BETTER else -1
    table = sorted(table, key=lambda r: (sign * r[key], r["node"]))
    for i, row in enumerate(table, 1):
        row["rank"] = i
    return table


def _report(
    table: list[dict[str, Any]],
    kept: list[str],
    candidates: list[str],
    budget: int,
    history: list[dict[str, Any]],
    to: str,
) -> dict[str, Any]:
    return {
        "sensitivity": [{**row, f"kept_{to}": row["node"] in kept} for row in table],
        "fallback": {
            "converged": True,
            "to": to,
            f"kept_{to}": kept,
            "quantized_layers": len(candidates),
            "budget_layers": budget,
            "float_fraction": round(len(kept) / len(candidates), 4) if candidates else 0.0,
            "rounds": history,
            "ranking": "drop_db: SQNR lost between a layer's input and output "
            "(float vs quantized activations, calibration data)",
        },
    }
