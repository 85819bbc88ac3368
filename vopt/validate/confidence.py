"""What a gate's interval says: decided, straddling its threshold, or too few images to resolve it."""

from __future__ import annotations

from typing import Any

from vopt.validate.stats import needed_samples

GATE_MODES = ("estimate", "lower_bound")
# A default gate on a loss (vopt.validate.defaults.DECIDED_BY_INTERVAL) fails when its whole interval is past
# the allowed value: the images show the loss, whatever the estimate says either way.
EXCLUDES = "excludes"


def unresolved(op: str, threshold: float, interval: dict[str, Any] | None) -> bool:
    """A rate gate (`>=` a fraction of images) whose check has fewer images than it takes to tell the
    threshold from twice the misses (0.95 from 0.90 takes 139): its estimate moves by single images."""
    if not interval or interval.get("unit") is not None or op not in (">=", ">"):
        return False
    need = needed_samples(threshold)
    return need is not None and int(interval["n"]) < need


def annotate(result: dict[str, Any], op: str, interval: dict[str, Any] | None, mode: str) -> dict[str, Any]:
    """Add n, ci95, `straddles` and `needs_images` to one gate result; under lower_bound, the pessimistic
    end of the interval decides."""
    if not interval:
        return result
    lo, hi = interval["ci95"]
    t = result["threshold"]
    n = int(interval["n"])
    result.update(n=n, ci95=[lo, hi], mode=mode)
    result["straddles"] = bool(lo < t < hi) or (op in (">=", "<=") and (lo == t or hi == t) and lo != hi)
    if mode == EXCLUDES and op in (">=", ">", "<=", "<"):
        # the optimistic end decides: "<=": the interval's low end; ">=": its high end
        bound = hi if op in (">=", ">") else lo
        ok = bound >= t if op == ">=" else bound > t if op == ">" else bound <= t if op == "<=" else bound < t
        result["passed"] = bool(ok)
        result["bound"] = bound
    if mode == "lower_bound" and op in (">=", ">", "<=", "<"):
        bound = lo if op in (">=", ">") else hi
        ok = bound >= t if op == ">=" else bound > t if op == ">" else bound <= t if op == "<=" else bound < t
        result["passed"] = bool(result["passed"] and ok)
        result["bound"] = bound
    unit = interval.get("unit")
    if unit is None and op in (">=", ">"):  # a rate: how many images tell the threshold from twice the misses
        need = needed_samples(t)
        if need is not None and n < need:
            result["needs_images"] = need
    return result


def gate_notes(gates: list[dict[str, Any]], where: str) -> list[str]:
    """Warnings for the build output: straddling intervals, and thresholds the check set is too small for."""
    notes = []
    for g in gates:
        if "ci95" not in g:
            continue
        lo, hi = g["ci95"]
        unit = _unit(g)
        if g.get("mode") == EXCLUDES:
            below = (
                g["value"] < g["threshold"] if g["condition"].startswith(">") else g["value"] > g["threshold"]
            )
            if not g.get("straddles") or g["passed"] is False or not below:
                continue  # decided, failed (its own line), or its estimate passes: nothing to say
            notes.append(
                f"{where} gate {g['metric']} {g['condition']}: measured {g['value']:.4g}{unit}, 95% "
                f"interval {lo:.4g}-{hi:.4g}{unit} (n={g['n']}): the images cannot tell it from "
                f"{g['threshold']:g}{unit}, so this default passes; more images would decide it"
            )
        elif g.get("straddles"):
            verdict = (
                "FAILS under gate_mode lower_bound"
                if g.get("mode") == "lower_bound"
                else "passes on its estimate only"
                if g["passed"]
                else "fails on its estimate"
            )
            notes.append(
                f"{where} gate {g['metric']} {g['condition']}: measured {g['value']:.4g}{unit} but the 95% "
                f"interval {lo:.4g}-{hi:.4g}{unit} (n={g['n']}) straddles the threshold: {verdict}; "
                "more images would decide it (gate_mode: lower_bound fails instead)"
            )
        if "needs_images" in g:
            notes.append(
                f"{where} gate {g['metric']} {g['condition']}: {g['n']} image(s) cannot resolve this "
                "threshold: "
                f"telling {g['threshold']:g} from {1 - 2 * (1 - g['threshold']):g} needs about "
                f"{g['needs_images']} images"
            )
    return notes


def failure_line(g: dict[str, Any], stage: str | None = None) -> str:
    """One failed gate for the error output. For a rate measured on images it adds the interval, and says
    whether the images could decide the verdict at all: a user must know a gate failed by its bound, or on
    too few images to tell, before reaching for more float layers."""
    line = f"{g['metric']} = {g['value']:.6g}, needs {g['condition']} ({stage or g['stage']})"
    if "ci95" not in g:
        return line
    lo, hi = g["ci95"]
    line += f"; 95% interval {lo:.4g}-{hi:.4g}{_unit(g)} (n={g['n']})"
    if g.get("mode") == "lower_bound" and "bound" in g:
        line += f": failed on its bound {g['bound']:.4g} (gate_mode lower_bound)"
    elif g.get("mode") == EXCLUDES and g["condition"].startswith(">"):
        line += (
            f": the whole interval is below {g['threshold']:g}, so the images show it (a default gate; "
            "too few images to resolve it on the estimate)"
        )
    elif g.get("mode") == EXCLUDES:
        line += (
            f": the whole interval is past the allowed {g['threshold']:g}{_unit(g)}, so the images show the "
            "loss (a default gate; set it in the recipe's gates to allow more)"
        )
    elif g.get("straddles"):
        line += ": the interval straddles the threshold, so more images would decide it"
    if "needs_images" in g:
        line += f"; this threshold needs about {g['needs_images']} images to resolve"
    return line


def unresolved_aim(gates: list[dict[str, Any]], how: str) -> str | None:
    """A warning before a search or fallback starts, when a failed gate it aims at is a rate its check set
    is too small to resolve: each change then moves the rate by single images, and the search stops on noise
    (EfficientNet-Lite0, gate 0.995 on 150 photos: 175 s, then exit 3 one photo short)."""
    g = next((g for g in gates if not g["passed"] and "needs_images" in g), None)
    if g is None:
        return None
    return (
        f"{how} aims at {g['metric']} {g['condition']} on {g['n']} check image(s); resolving that threshold "
        f"takes about {g['needs_images']}, so each change moves it by single images. Add check images, or "
        "gate a metric that this many images resolve, such as centered_cosine"
    )


def _unit(g: dict[str, Any]) -> str:
    return " pt" if g["metric"].endswith("_drop") else ""
