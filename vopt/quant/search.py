"""Accuracy-aware quantization search: reach the gate with the fewest changes to plain int8.

The search works on the quantize gate's own metric, measured on the check images against the float model,
never on a layer's own SQNR (which does not find the layers that flip the top-1 class):
1. **Global settings.** Each of the scheme's real alternatives (calibration range method, bias correction,
   ...) is built and checked; the first one that passes wins, else the best by the gate metric among those
   the scheme lets layer changes follow (`layers_follow`).
2. **Sensitivity.** With those settings, each quantized layer is changed alone (kept in float, or given
   16-bit activations where the target runs them) and the final output is measured on the *focus* images:
   those whose top-1 class flips under plain int8, plus the float model's closest calls (smallest top-1 to
   top-2 logit margin). A layer scores by the KL divergence of the output it removes, then by the flips it
   repairs.
3. **Greedy.** Layers are added in that order, in growing steps (1, 2, 4, ...), until the gate holds on the
   full check set; a bisection then finds the shortest passing prefix and a last pass drops any layer whose
   removal keeps the gate: the fewest changes that hold it.
4. **Bridge** (`bridge` > 0). The layers in short gaps between two changed ones (graph order) are changed too,
   and that plan is kept if it holds the gate and runs at least `BRIDGE_SPEED` as fast as the fewest changes,
   timed on the target's runtime. On ORT's CPU kernels each int8/float edge costs a QuantizeLinear and a
   DequantizeLinear on a full feature map, so one float region can cost no more than scattered islands, and
   it keeps more of the float model's accuracy. With the bridge on, bisection and pruning leave it twice the
   slowest check of the budget; a bridge that does not run says why in the manifest.
Every trial is timed against `budget_s`; when it runs out, the best plan found so far is returned.

The search measures on the quantize check's images only: the held-out part of a split folder, or the check's
own data, never calibration images (vopt.quant.heldout decides them when the recipe is planned).

`Search` is independent of the scheme: `StageSearch` binds it to one quantize step through
vopt.quant.protocol.QuantizeSession (nothing else of the stage), asking the scheme plugin for what differs
between schemes (its `search_settings`, whether its output is a QDQ graph or it ranks on
`qdq_proxy`, whether `fallback_precisions` holds int16)."""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vopt.quant.protocol import CheckResult, LoopResult, QuantizeSession

RANK_SHARE = 0.6  # of budget_s, at most, for the sensitivity pass
# A bridged plan is kept when it runs at least this fast, relative to the fewest changes: within the timing
# noise of one interleaved comparison.
BRIDGE_SPEED = 0.97
# The least a float layer is taken to cost when the search weighs measured layer times (ms): below it (or
# where float is faster) the profiler cannot tell layers apart, and the repair alone orders them.
COST_FLOOR_MS = 0.02


@dataclass(frozen=True)
class Plan:
    """One candidate artifact: global scheme settings plus per-layer changes (node -> 'float' | 'int16')."""

    settings: tuple[tuple[str, Any], ...] = ()
    layers: tuple[tuple[str, str], ...] = ()

    def with_layers(self, layers: list[tuple[str, str]]) -> Plan:
        return Plan(self.settings, tuple(layers))

    def nodes(self, kind: str) -> list[str]:
        return [n for n, k in self.layers if k == kind]

    def describe(self) -> dict[str, Any]:
        return {"settings": dict(self.settings), "layers": [{"node": n, "to": k} for n, k in self.layers]}


@dataclass
class Outcome:
    passed: bool
    value: float  # the gate's metric on the full check set
    detail: Any = None  # whatever the caller's check returned (gate rows, metrics)


@dataclass
class Hooks:
    """What the stage provides. `probe(plan, idx)` -> the first output on check images `idx` (array [n, ...]);
    `check(plan)` -> Outcome on the full check set (the real gates). Both may raise nothing but OSError."""

    probe: Callable[[Plan, np.ndarray], np.ndarray]
    check: Callable[[Plan], Outcome]
    bar: Callable[[str, int | None], Any] | None = None  # ctx.reporter.bar
    # The real artifact's output on every check image (picks the focus images); `probe` when None.
    outputs: Callable[[Plan], np.ndarray] | None = None
    # speed(a, b): b's throughput over a's on the target's runtime, or None when it cannot be timed.
    speed: Callable[[Plan, Plan], float | None] | None = None


@dataclass
class Result:
    plan: Plan
    outcome: Outcome
    converged: bool
    base_value: float
    table: list[dict[str, Any]] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    settings_tried: list[dict[str, Any]] = field(default_factory=list)
    focus_images: int = 0
    elapsed_s: float = 0.0
    budget_exhausted: bool = False
    bridge: dict[str, Any] | None = None  # what the bridge pass tried, or why it did not run


# -- metrics on the final output ---------------------------------------------------------------
def softmax(x: np.ndarray) -> np.ndarray:
    z = np.asarray(x, np.float64).reshape(len(x), -1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def kl_per_image(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    """KL(float || quantized) of the softmax of each image's output."""
    p, q = softmax(ref), softmax(out)
    return np.sum(p * (np.log(p + 1e-12) - np.log(q + 1e-12)), axis=1)


def flipped(ref: np.ndarray, out: np.ndarray) -> np.ndarray:
    r, o = np.asarray(ref).reshape(len(ref), -1), np.asarray(out).reshape(len(out), -1)
    return np.argmax(r, axis=1) != np.argmax(o, axis=1)


def margins(ref: np.ndarray) -> np.ndarray:
    """Top-1 minus top-2 logit of the float model: small margins are the calls int8 can tip over."""
    r = np.sort(np.asarray(ref, np.float64).reshape(len(ref), -1), axis=1)
    return r[:, -1] - r[:, -2] if r.shape[1] > 1 else np.zeros(len(r))


def focus(ref: np.ndarray, base: np.ndarray, extra: int) -> np.ndarray:
    """Indices of the images that flip under `base`, plus the `extra` unflipped ones with the smallest
    margin."""
    flips = np.flatnonzero(flipped(ref, base))
    rest = np.setdiff1d(np.arange(len(ref)), flips)
    close = rest[np.argsort(margins(ref)[rest], kind="stable")[:extra]]
    return np.sort(np.concatenate([flips, close])).astype(int)


def score(ref: np.ndarray, out: np.ndarray) -> tuple[int, float]:
    """(flips, mean KL) of an output against the float one: lower is better, compared as a tuple."""
    return int(flipped(ref, out).sum()), float(np.mean(kl_per_image(ref, out)))


# -- the search ----------------------------------------------------------------------------------
class Search:
    def __init__(
        self,
        hooks: Hooks,
        ref: np.ndarray,
        candidates: list[str],
        *,
        kinds: tuple[str, ...] = ("float",),
        settings: list[dict[str, Any]] | None = None,
        budget_s: float = 600.0,
        max_changes: int | None = None,
        focus_extra: int = 24,
        higher_is_better: bool = True,
        layers_follow: Callable[[dict[str, Any]], bool] = lambda settings: True,
        bridge: int = 0,
        costs: dict[str, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.hooks, self.ref, self.candidates, self.kinds = hooks, ref, list(candidates), kinds
        self.settings = settings or [{}]
        self.budget_s, self.focus_extra, self.higher = budget_s, focus_extra, higher_is_better
        self.max_changes = len(self.candidates) if max_changes is None else max_changes
        self.layers_follow, self.clock, self.bridge_gap = layers_follow, clock, bridge
        # ms per inference that keeping each layer float adds on the target's runtime (measured per layer;
        # negative where float is faster): the greedy weighs what a layer repairs against what it costs
        self.costs = costs or {}
        self.start = clock()
        self.trials: list[dict[str, Any]] = []
        self.exhausted = False
        self.slowest_check = 0.0  # seconds: what the bridge's time reserve is made of

    # budget ---------------------------------------------------------------------------------
    def left(self) -> float:
        return self.budget_s - (self.clock() - self.start)

    def out_of_time(self, reserve: float = 0.0) -> bool:
        """Whether the budget is spent, or all but `reserve` seconds of it."""
        if self.left() <= reserve:
            self.exhausted = True
        return self.exhausted

    def bridge_reserve(self) -> float:
        """What the bridge needs of the budget: one check, then building and timing two plans. Bisection and
        pruning stop this much early, so a bridge the recipe asked for is not skipped when they run long (a
        full-bias-correction search on EfficientNet-Lite0 spent its whole budget pruning)."""
        return 2 * self.slowest_check if self.bridge_gap > 0 else 0.0

    def better(self, a: Outcome, b: Outcome) -> bool:
        if a.passed != b.passed:
            return a.passed
        return a.value > b.value if self.higher else a.value < b.value

    def _check(self, plan: Plan, why: str) -> Outcome:
        if self.bridge_gap > 0:  # timed for the bridge's reserve only
            started = self.clock()
            got = self.hooks.check(plan)
            self.slowest_check = max(self.slowest_check, self.clock() - started)
        else:
            got = self.hooks.check(plan)
        self.trials.append(
            {
                "why": why,
                "changes": len(plan.layers),
                **plan.describe()["settings"],
                "value": round(got.value, 6),
                "passed": got.passed,
            }
        )
        return got

    def _bar(self, title: str, total: int | None) -> Any:
        if self.hooks.bar is None:
            import contextlib

            return contextlib.nullcontext(lambda n=1: None)
        return self.hooks.bar(title, total)

    # steps ----------------------------------------------------------------------------------
    def run(self, base: Outcome) -> Result:
        plan, best = Plan(), base
        tried = [{**self.settings[0], "value": round(base.value, 6), "passed": base.passed}]
        # 1. Global settings: the first that passes wins; else the best by the gate metric among those the
        # layer changes may follow (the scheme's `layers_follow`).
        with self._bar("search: calibration settings", len(self.settings) - 1) as advance:
            for s in self.settings[1:]:
                if best.passed or self.out_of_time():
                    break
                cand = Plan(tuple(sorted(s.items())))
                got = self._check(cand, "settings")
                follow = self.layers_follow(s)
                tried.append(
                    {**s, "value": round(got.value, 6), "passed": got.passed, "layers_follow": follow}
                )
                if self.better(got, best) and (got.passed or follow):
                    plan, best = cand, got
                advance(1)
        result = Result(plan, best, best.passed, base.value, settings_tried=tried)
        if best.passed or self.out_of_time() or not self.candidates or self.max_changes == 0:
            return self._done(result)
        # 2. Sensitivity on the focus images, one layer (and kind) at a time.
        all_idx = np.arange(len(self.ref))
        base_out = self.hooks.outputs(plan) if self.hooks.outputs else self.hooks.probe(plan, all_idx)
        idx = focus(self.ref, base_out, self.focus_extra)
        result.focus_images = len(idx)
        table = self.rank(plan, idx, self.hooks.probe(plan, idx))
        result.table = table
        # Layers that helped alone come first; the rest follow, so a search allowed many changes can reach
        # them (a labels gate on EfficientNet-Lite0 still failed with the 32 helpful ones in float).
        order = [(r["node"], r["to"]) for r in sorted(table, key=self.order_key)]  # stable
        ranked = {r["node"] for r in table}  # layers the ranking had no time to probe go last
        order += [(n, self.kinds[0]) for n in self.candidates if n not in ranked]
        # 3. Greedy prefix, bisection, pruning.
        found = self.greedy(plan, order, result)
        return self._done(found)

    def order_key(self, row: dict[str, Any]) -> tuple[bool, float]:
        """Layers that helped alone first, in the ranking's order; with measured layer times, those to float
        by what they repair per ms they cost (of two that help alike, the cheaper first)."""
        helpful = row["gain"] > 0
        if not helpful or not self.costs or row["to"] != "float":
            return (not helpful, 0.0)
        return (False, -row["gain"] / max(self.costs.get(row["node"], 0.0), COST_FLOOR_MS))

    def rank(self, plan: Plan, idx: np.ndarray, base_out: np.ndarray) -> list[dict[str, Any]]:
        ref = self.ref[idx]
        base_flips, base_kl = score(ref, base_out)
        rows: list[dict[str, Any]] = []
        trials = [(n, k) for n in self.candidates for k in self.kinds]
        with self._bar(f"search: sensitivity ({len(idx)} focus images)", len(trials)) as advance:
            for node, kind in trials:
                # the ranking may use 60% of the budget: the greedy needs the rest (layers not probed rank
                # last)
                if self.out_of_time() or self.clock() - self.start > RANK_SHARE * self.budget_s:
                    break
                flips, kl = score(ref, self.hooks.probe(plan.with_layers([(node, kind)]), idx))
                rows.append(
                    {
                        "node": node,
                        "to": kind,
                        "flips": flips,
                        "kl": round(kl, 6),
                        "flips_fixed": base_flips - flips,
                        "kl_gain": round(base_kl - kl, 6),
                    }
                )
                advance(1)
        # By the KL of the output over the focus images, then the flips repaired. A handful of flips on a
        # check set is mostly chance: on EfficientNet-Lite0 the layer that repaired a check flip moved the
        # held-out flips not at all, while the KL order lowered them steadily.
        for r in rows:
            r["gain"] = round(r["kl_gain"] / base_kl if base_kl > 0 else float(r["flips_fixed"]), 6)
        rows.sort(key=lambda r: (-r["kl_gain"], -r["flips_fixed"], r["node"], r["to"]))
        seen: set[str] = set()
        table = []
        for r in rows:  # one kind per layer: its best
            if r["node"] not in seen:
                seen.add(r["node"])
                table.append(r)
        for i, r in enumerate(table, 1):
            r["rank"] = i
        return table

    def greedy(self, plan: Plan, order: list[tuple[str, str]], result: Result) -> Result:
        limit = min(self.max_changes, len(order))
        checked: dict[int, Outcome] = {}

        def at(k: int) -> Outcome:
            if k not in checked:
                checked[k] = self._check(plan.with_layers(order[:k]), "prefix")
            return checked[k]

        best_k, best = 0, result.outcome
        low, high = 0, None  # low: a failing prefix length; high: the shortest passing one found
        with self._bar("search: fewest changes that hold the gate", None) as advance:
            for k in _doubling(limit):
                if self.out_of_time():
                    break
                got = at(k)
                advance(1)
                if self.better(got, best):
                    best_k, best = k, got
                if got.passed:
                    high = k
                    break
                low = k
            while high is not None and high - low > 1 and not self.out_of_time(self.bridge_reserve()):
                mid = (low + high) // 2
                got = at(mid)
                advance(1)
                if got.passed:
                    high, best_k, best = mid, mid, got
                else:
                    low = mid
            layers = list(order[:best_k])
            if best.passed:  # drop any layer the gate does not need (latest first)
                for item in reversed(list(layers)):
                    if self.out_of_time(self.bridge_reserve()) or len(layers) <= 1:
                        break
                    trial = [x for x in layers if x != item]
                    got = self._check(plan.with_layers(trial), "prune")
                    advance(1)
                    if got.passed:
                        layers, best = trial, got
        if self.bridge_gap > 0:
            if not best.passed:
                result.bridge = {"gap": self.bridge_gap, "kept": False, "why": "no plan held the gate"}
            elif self.left() <= 0:
                result.bridge = {"gap": self.bridge_gap, "kept": False, "why": "the budget ran out first"}
            else:
                layers, best = self.bridge(plan, layers, best, result)
        result.plan, result.outcome, result.converged = plan.with_layers(layers), best, best.passed
        return result

    def bridged(self, layers: list[tuple[str, str]]) -> tuple[list[tuple[str, str]], int]:
        """`layers` plus the candidates in each gap of at most `bridge_gap` between two changed layers of the
        same kind, in the candidates' (graph) order: the shortest gaps first, as many as `max_changes`
        allows. Also returns how many gaps did not fit."""
        pos = {n: i for i, n in enumerate(self.candidates)}
        kinds = dict(layers)
        chosen = sorted((pos[n], n) for n in kinds if n in pos)
        gaps = [
            [(n, kinds[a]) for n in self.candidates[i + 1 : j]]
            for (i, a), (j, b) in itertools.pairwise(chosen)  # nothing between two neighbours is changed
            if 1 < j - i <= self.bridge_gap + 1 and kinds[a] == kinds[b]
        ]
        added: list[tuple[str, str]] = []
        left_out = 0
        for gap in sorted(gaps, key=len):  # stable: graph order among equal lengths
            if len(layers) + len(added) + len(gap) <= self.max_changes:
                added += gap
            else:
                left_out += 1
        return [*layers, *sorted(added, key=lambda x: pos[x[0]])], left_out

    def bridge(
        self, plan: Plan, layers: list[tuple[str, str]], best: Outcome, result: Result
    ) -> tuple[list[tuple[str, str]], Outcome]:
        wider, left_out = self.bridged(layers)
        info: dict[str, Any] = {"gap": self.bridge_gap, "added": [n for n, _ in wider[len(layers) :]]}
        if left_out:
            info["gaps_left_out"] = f"{left_out} (over max_float_fraction)"
        result.bridge = info
        if len(wider) == len(layers):
            info["kept"] = False
            info["why"] = "no gap to bridge" + (" within max_float_fraction" if left_out else "")
            return layers, best
        got = self._check(plan.with_layers(wider), "bridge")
        info.update(value=round(got.value, 6), passed=got.passed)
        timed = got.passed and self.hooks.speed is not None
        ratio = self.hooks.speed(plan.with_layers(layers), plan.with_layers(wider)) if timed else None
        info["speed_vs_fewest"] = None if ratio is None else round(ratio, 3)
        info["kept"] = ratio is not None and ratio >= BRIDGE_SPEED
        if not got.passed:
            info["why"] = "does not hold the gate"
        elif ratio is None:
            info["why"] = "could not be timed"
        elif not info["kept"]:
            info["why"] = f"slower: {ratio:.3f}x the fewest changes"
        return (wider, got) if info["kept"] else (layers, best)

    def _done(self, result: Result) -> Result:
        result.trials = self.trials
        result.elapsed_s = round(self.clock() - self.start, 2)
        result.budget_exhausted = self.exhausted
        return result


def _doubling(limit: int) -> Iterator[int]:
    k = 1
    while k < limit:
        yield k
        k *= 2
    if limit >= 1:
        yield limit


def higher_is_better(condition: str) -> bool:
    """Whether a gate's metric improves upwards: `>=0.99` does, `<=3` (a top-1 drop) does not."""
    return not str(condition).lstrip().startswith("<")


def budget_layers(fraction: float, candidates: int) -> int:
    return math.floor(fraction * candidates)


# -- the quantize stage's side: build, check and probe plans with the stage's scheme ------------------
class StageSearch:
    """Binds a Search to one quantize step (a QuantizeSession): plans become artifacts through the step's own
    scheme (from cached ranges), are checked by the step's own gates on its check images, and are probed on an
    ORT QDQ model (the scheme's own output when it is one, else the scheme's `qdq_proxy`)."""

    def __init__(self, session: QuantizeSession, model: Path, first: Path, metric: str):
        self.session, self.model, self.first, self.calib = session, Path(model), Path(first), session.calib
        self.cfg, self.scheme, self.section = session.cfg, session.scheme, session.cfg.search
        self.metric = metric
        # The check's images and the float model's first output on them (what the step's check measured):
        # the held-out check images, never calibration images.
        self.images = session.check_images
        self.output = next(iter(session.reference))
        self.ref = np.asarray(session.reference[self.output])
        self.own_method = self.cfg.calibration.method
        self.own_options = self.scheme.options  # the recipe's quantize.options, as the scheme parsed them
        self.built: dict[Plan, Path] = {Plan(): self.first}
        self.infos: dict[Plan, dict[str, Any]] = {Plan(): dict(self.scheme.info)}
        self.checks: dict[Plan, dict[str, Any]] = {}
        self.calibrations: dict[str, Any] = {self.own_method: self.scheme.saved_calibration()}
        self.probes: dict[tuple, Any] = {}
        self.proxy: tuple[Any, Path, Path] | None = None  # (scheme, float model, QDQ model)
        self.count = 0

    # settings -------------------------------------------------------------------------------
    def settings(self) -> list[dict[str, Any]]:
        """The recipe's own first, then the scheme's alternative options, then the other range methods."""
        own = self.own_method
        out = [{"method": own}]
        if self.section.scheme_settings:
            for alt in self.scheme.search_settings:
                differs = any(getattr(self.own_options, k, v) != v for k, v in alt.items())
                if differs and self.scheme.applies(alt):
                    out.append({"method": own, **alt})
        out += [{"method": m} for m in self.section.methods if m != own]
        return out

    def changed(self, plan: Plan) -> dict[str, Any]:
        """The plan's settings that differ from the recipe's (what --write-back writes)."""
        own = {"method": self.own_method, **self.own_options.model_dump()}
        return {k: v for k, v in plan.settings if own.get(k) != v}

    def _apply(self, settings: dict[str, Any]) -> None:
        """Point the scheme at these settings: its calibration method (calibrating once per method; the ranges
        of each are kept) and its own options. Layer changes are the search's, whatever options.fallback_to
        says."""
        scheme = self.scheme
        method = settings.get("method", self.own_method)
        calibration = scheme.cfg.calibration.model_copy(update={"method": method})
        scheme.cfg = scheme.cfg.model_copy(update={"calibration": calibration})
        update = {k: v for k, v in settings.items() if k != "method"}
        if "fallback_to" in type(self.own_options).model_fields:
            update["fallback_to"] = "float"
        scheme.options = self.own_options.model_copy(update=update)
        if method in self.calibrations:
            scheme.restore_calibration(self.calibrations[method])
            return
        with self.session.progress(f"search: calibrate ({method})", self.calib.count()) as advance:
            scheme.calibrate(self.model, self.calib, advance)
        self.calibrations[method] = scheme.saved_calibration()

    # hooks ----------------------------------------------------------------------------------
    def build(self, plan: Plan) -> Path:
        if plan in self.built:
            return self.built[plan]
        floats, int16 = plan.nodes("float"), plan.nodes("int16")
        if floats and not int16 and self.scheme.qdq_output:
            # Float islands by editing the QDQ graph, not by ORT's nodes_to_exclude: on EfficientNet-Lite0
            # an excluded depthwise Conv -> Clip -> Q island raised the output KL from 0.0054 to 0.042
            # once onnxruntime's graph optimizations ran (0.0054 with them off); the edited island keeps
            # the folded clamp in the Q range and measures as the probe does.
            probe = self._probe(plan.settings)
            self.count += 1
            out = self.scheme.work / f"search_{self.count}.onnx"
            out.write_bytes(probe.model_bytes(floats))
            self.infos[plan] = self.infos[Plan(plan.settings)]
        else:
            self._apply(dict(plan.settings))
            self.count += 1
            out = self.scheme.work / f"search_{self.count}{Path(self.scheme.output_name()).suffix}"
            if int16:  # only where fallback_precisions holds int16 (checked when the recipe loads)
                self.scheme.quantize(self.model, floats, out, int16_nodes=int16)
            else:
                self.scheme.quantize(self.model, floats, out)
            self.infos[plan] = dict(self.scheme.info)
        self.built[plan] = out
        return out

    def check(self, plan: Plan) -> Outcome:
        if plan not in self.checks:
            res = self.session.evaluate(self.build(plan))
            if res is None:  # cannot happen once the step's own check ran: same runtime, same format
                raise RuntimeError("quantize.search: the check could not run a searched artifact")
            self.checks[plan] = res
        gates = self.checks[plan]["gates"]
        row = next(g for g in gates if g["metric"] == self.metric)
        return Outcome(all(g["passed"] for g in gates), float(row["value"]), self.checks[plan])

    def _proxy(self) -> tuple[Any, Path, Path]:
        """For a scheme whose output is not a QDQ graph: its ORT QDQ proxy, calibrated, and its QDQ model."""
        if self.proxy is None:
            bar = self.session.progress("search: calibrate the ORT ranking proxy", self.calib.count())
            with bar as advance:
                proxy, float_model = self.scheme.qdq_proxy(self.model, self.calib, advance)
            qdq = proxy.quantize(float_model, [], proxy.work / "proxy_qdq.onnx")
            self.proxy = (proxy, float_model, qdq)
        return self.proxy

    def _probe(self, settings: tuple) -> Any:
        """The IslandProbe for a plan's settings: the QDQ model of those settings, or the proxy's."""
        from vopt.quant.sensitivity import IslandProbe

        key = settings if self.scheme.qdq_output else ()
        if key not in self.probes:
            if self.scheme.qdq_output:
                qdq, float_model = self.build(Plan(settings)), self.model
            else:
                _, float_model, qdq = self._proxy()
            self.probes[key] = IslandProbe(qdq, float_model)
        return self.probes[key]

    def _first(self, out: dict[str, Any]) -> np.ndarray:
        return np.asarray(out[self.output] if self.output in out else next(iter(out.values())))

    def probe(self, plan: Plan, idx: np.ndarray) -> np.ndarray:
        """The first output on check images `idx` with the plan's layer changes."""
        images = self.images[idx]
        if plan.nodes("int16"):  # 16-bit activations cannot be made by editing the graph: re-quantize
            from vopt.quant.evaluate import ort_outputs

            return self._first(ort_outputs(self.build(plan), images))
        return self._probe(plan.settings).outputs(plan.nodes("float"), images, self.output)

    def focus_outputs(self, plan: Plan) -> np.ndarray:
        """The real artifact's first output on every check image (which images flip)."""
        from vopt.quant.evaluate import outputs_of

        out = outputs_of(self.build(plan), self.scheme.output_format, self.images)
        return self._first(out) if out else self.probe(plan, np.arange(len(self.images)))

    def speed(self, a: Plan, b: Plan) -> float | None:
        """b's throughput over a's: both artifacts timed interleaved on the target's runtime."""
        # timed even under check.benchmark: false, since the recipe asked for the bridge; an 'inconclusive'
        # verdict (the interval straddles 1) is a measured tie, which is what a bridge may cost
        sp = self.session.compare_speed(self.build(a), self.build(b), "search: speed of the bridged plan")
        return sp.get("speedup")

    def candidates(self) -> list[str]:
        if self.scheme.qdq_output:
            return self.scheme.candidates(self.first)
        proxy, _, qdq = self._proxy()
        return proxy.candidates(qdq)

    def finish(self, plan: Plan) -> None:
        """Leave the scheme as the chosen plan built it (its settings and what it reported)."""
        if plan.settings:
            self._apply(dict(plan.settings))
        else:
            self.scheme.cfg, self.scheme.options = self.cfg, self.own_options
        self.scheme.info = self.infos.get(plan, self.scheme.info)


def run_search(session: QuantizeSession, model: Path, first: Path, checked: CheckResult) -> LoopResult:
    """The stage's entry: search, and exit 3 with the table when the gate cannot be held within the budget.
    Returns the chosen model and its report sections (manifest `search`, `fallback`, `sensitivity`)."""
    from vopt.errors import GateFailed
    from vopt.validate.confidence import failure_line, unresolved_aim

    cfg, sec = session.cfg, session.cfg.search
    assert sec is not None  # the stage runs the search only when the recipe has quantize.search
    gates = checked["gates"]
    # The gate to aim at: the first that failed (the recipe's gates come before the task's defaults).
    aim = next(g for g in gates if not g["passed"])
    note = unresolved_aim([aim], "quantize.search")
    if note:
        session.warn(note)
    metric = aim["metric"]
    glue = StageSearch(session, model, first, metric)
    candidates = glue.candidates()
    base = Outcome(all(g["passed"] for g in gates), float(aim["value"]), checked)
    glue.checks[Plan()] = checked
    hooks = Hooks(
        probe=glue.probe,
        check=glue.check,
        bar=session.progress,
        outputs=glue.focus_outputs,
        speed=glue.speed,
    )
    search = Search(
        hooks,
        glue.ref,
        candidates,
        kinds=tuple(sec.to),
        settings=glue.settings(),
        budget_s=sec.budget_s,
        max_changes=budget_layers(cfg.max_float_fraction, len(candidates)),
        focus_extra=sec.focus_images,
        higher_is_better=higher_is_better(aim["condition"]),
        layers_follow=glue.scheme.layers_follow,
        bridge=sec.bridge,
        costs=getattr(session, "layer_costs", None),  # quantize.options.float_if_slower measured them
    )
    res = search.run(base)
    plan = res.plan
    path = glue.build(plan)
    final = glue.checks.get(plan) or session.evaluate(path)
    if final is None:  # cannot happen once the step's own check ran: same runtime, same format
        raise RuntimeError("quantize.search: the check could not run the chosen artifact")
    glue.finish(plan)
    changed = glue.changed(plan)
    floats, int16 = plan.nodes("float"), plan.nodes("int16")
    report: dict[str, Any] = {}
    report["sensitivity"] = [{**r, "changed": (r["node"], r["to"]) in plan.layers} for r in res.table]
    report["search"] = {
        "converged": res.converged,
        "metric": metric,
        "condition": aim["condition"],
        "value_before": round(res.base_value, 6),
        "value_after": round(res.outcome.value, 6),
        "changed_settings": changed,
        "settings_tried": res.settings_tried,
        "changes": len(plan.layers),
        "layers": plan.describe()["layers"],
        "focus_images": res.focus_images,
        "check_images": len(glue.images),
        "images": "the quantize check's images (data.check_images): never calibration images",
        "trials": res.trials,
        "elapsed_s": res.elapsed_s,
        "budget_s": sec.budget_s,
        "budget_exhausted": res.budget_exhausted,
        "ranking": "each layer alone changed, measured on the focus images: the KL divergence of the "
        "output it removes, then the top-1 flips it repairs (not the layer's own SQNR)",
    }
    if res.bridge is not None:
        report["search"]["bridge"] = res.bridge
    report["fallback"] = {
        "converged": res.converged,
        "to": "float",
        "kept_float": floats,
        "kept_int16": int16,
        "quantized_layers": len(candidates),
        "budget_layers": search.max_changes,
        "float_fraction": round(len(floats) / len(candidates), 4) if candidates else 0.0,
        "rounds": [
            {"changes": t["changes"], metric: t["value"]} for t in res.trials if t["why"] != "settings"
        ],
        "ranking": "quantize.search",
    }
    if plan != Plan():
        report["search"]["speed_vs_all_int8"] = _speed_cost(session, first, path)
    if not res.converged:
        failing = [g for g in final["gates"] if not g["passed"]]
        why = (
            "its budget_s ran out"
            if res.budget_exhausted
            else f"{len(plan.layers)} of at most {search.max_changes} layer changes "
            f"(max_float_fraction {cfg.max_float_fraction})"
        )
        lines = [failure_line(g, "quantize") for g in failing]
        lines.append(
            f"quantize.search did not hold the gate ({why}); best plan: {len(plan.layers)} change(s), "
            f"settings {changed or 'as recipe'}; sensitivity, best first:"
        )
        lines += [
            f"{r['rank']:>4}  {r['node']} -> {r['to']}: flips fixed {r['flips_fixed']}, "
            f"KL gain {r['kl_gain']:.4g}"
            for r in res.table[:15]
        ]
        raise GateFailed(
            "quantize gate failed after quantize.search",
            lines=lines,
            failures=[{**g, "stage": "quantize"} for g in failing],
        )
    return LoopResult(
        path=Path(path),
        float_layers=floats,
        check=final,
        int16_layers=int16,
        report=report,
        calibration_method=changed.get("method"),
    )


def _speed_cost(session: QuantizeSession, all_int8: Path, final: Path) -> dict[str, Any]:
    """The final mix against plain int8, interleaved on the target's runtime: what the changes cost."""
    if not session.cfg.check.benchmark:
        return {"status": "not measured", "reason": "quantize.check.benchmark: false"}
    sp = session.compare_speed(all_int8, final, "search: speed of the final mix vs all-int8")
    if sp.get("status") != "ok":
        return sp
    return {
        "status": "ok",
        "all_int8_img_s": sp["float_img_s"],
        "final_img_s": sp["quantized_img_s"],
        "ratio": sp["speedup"],
        "runtime": sp["runtime"],
        "method": sp["method"],
    }
