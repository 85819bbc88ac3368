"""The search's ranking and greedy logic, on a model of a quantized network whose numbers are known:
each layer adds a known error to the logits, and keeping it in float removes that error."""

from __future__ import annotations

import numpy as np

from vopt.quant.search import Hooks, Outcome, Plan, Search, focus, kl_per_image, score


def _world(seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = rng.normal(size=(60, 10)) * 3
    # 12 layers; 'L3' and 'L7' carry almost all the error (L3 on the closest calls), the rest a little noise
    errors = {f"L{i}": rng.normal(size=ref.shape) * 0.01 for i in range(12)}
    errors["L3"] = rng.normal(size=ref.shape) * 1.5
    errors["L7"] = rng.normal(size=ref.shape) * 1.0
    return ref, errors


def _hooks(ref, errors, calls):
    def out(plan: Plan, idx):
        floats = set(plan.nodes("float"))
        return ref[idx] + sum(e[idx] for n, e in errors.items() if n not in floats)

    def check(plan: Plan) -> Outcome:
        calls.append(plan)
        o = out(plan, np.arange(len(ref)))
        agree = float(np.mean(o.argmax(1) == ref.argmax(1)))
        return Outcome(agree >= 0.99, agree)

    return Hooks(probe=out, check=check)


def test_focus_takes_the_flips_and_the_closest_calls():
    ref = np.array([[3.0, 0.0], [1.0, 0.9], [0.0, 2.0], [2.0, 1.5]])
    out = np.array([[0.0, 3.0], [1.0, 0.9], [0.0, 2.0], [2.0, 1.5]])  # image 0 flips
    assert list(focus(ref, out, extra=1)) == [0, 1]  # + the smallest margin (0.1)
    assert list(focus(ref, out, extra=2)) == [0, 1, 3]
    assert score(ref, ref)[0] == 0 and score(ref, out)[0] == 1
    assert kl_per_image(ref, ref).max() < 1e-9 and kl_per_image(ref, out)[0] > 1


def test_search_ranks_by_output_effect_and_keeps_the_fewest_layers():
    ref, errors = _world()
    calls: list[Plan] = []
    hooks = _hooks(ref, errors, calls)
    base = hooks.check(Plan())
    assert not base.passed
    res = Search(hooks, ref, sorted(errors), settings=[{"method": "minmax"}, {"method": "entropy"}]).run(base)
    assert res.converged and res.outcome.value >= 0.99
    kept = set(res.plan.nodes("float"))
    # the two layers that carry the error are ranked first and are all the search keeps in float
    assert {r["node"] for r in res.table[:2]} == {"L3", "L7"}
    assert kept <= {"L3", "L7"} and kept
    assert res.table[0]["flips_fixed"] > 0
    # one settings trial, then prefixes and pruning: far fewer full checks than layers x 2
    assert len(calls) - 1 < 12
    assert res.settings_tried[0] == {"method": "minmax", "value": round(base.value, 6), "passed": False}


def test_measured_layer_times_order_the_helpful_layers_by_repair_per_ms():
    """With float_if_slower's per-layer times, of two layers that help, the one that repairs more per ms it
    costs in float is tried first; layers that did not help stay last, whatever they cost."""
    ref, errors = _world()
    hooks = _hooks(ref, errors, [])
    rows = [
        {"node": "big", "to": "float", "gain": 0.6},
        {"node": "cheap", "to": "float", "gain": 0.4},
        {"node": "useless", "to": "float", "gain": 0.0},
    ]
    costs = {"big": 3.0, "cheap": 0.5, "useless": 0.0}
    weighed = Search(hooks, ref, sorted(errors), costs=costs)
    assert [r["node"] for r in sorted(rows, key=weighed.order_key)] == ["cheap", "big", "useless"]
    plain = Search(hooks, ref, sorted(errors))  # sensitivity alone: the ranking's order
    assert [r["node"] for r in sorted(rows, key=plain.order_key)] == ["big", "cheap", "useless"]
    # the search still finds the two layers that carry the error when it weighs their times
    base = hooks.check(Plan())
    res = Search(hooks, ref, sorted(errors), costs={"L3": 2.0, "L7": 0.1}).run(base)
    assert res.converged and set(res.plan.nodes("float")) <= {"L3", "L7"}


def test_search_stops_at_its_budget_with_the_best_plan_so_far():
    ref, errors = _world()
    ticks = iter(range(0, 10_000, 10))
    hooks = _hooks(ref, errors, [])
    base = hooks.check(Plan())
    res = Search(hooks, ref, sorted(errors), budget_s=100, clock=lambda: next(ticks)).run(base)
    # the ranking stopped at 60% of the budget (a few layers probed, not all 12), the greedy used the rest
    assert 0 < len(res.table) < 12 and not res.converged
    assert res.elapsed_s <= 110 and res.outcome.value >= base.value


def test_a_gate_that_needs_layers_without_gain_alone_can_still_reach_them():
    """A labels gate on a few photos can need more layers than those whose output effect shows alone (on
    EfficientNet-Lite0, 32 helpful layers in float did not hold top1_drop <= 0.3): the greedy goes on into
    the rest of the allowance instead of stopping at the helpful ones."""
    ref, errors = _world()
    for name in errors:
        if name not in ("L3", "L7"):
            errors[name] = np.zeros_like(ref)  # no effect on the output alone

    def check(plan: Plan) -> Outcome:
        kept = len(plan.nodes("float"))
        return Outcome(kept >= 9, kept / 12)

    hooks = Hooks(probe=_hooks(ref, errors, []).probe, check=check)
    res = Search(hooks, ref, sorted(errors)).run(check(Plan()))
    assert [r["node"] for r in res.table[:2]] in (["L3", "L7"], ["L7", "L3"])
    assert res.converged and len(res.plan.nodes("float")) == 9
    assert {"L3", "L7"} <= set(res.plan.nodes("float"))


def test_a_passing_setting_needs_no_layer_changes():
    ref, errors = _world()

    def check(plan: Plan) -> Outcome:
        ok = dict(plan.settings).get("method") == "percentile"
        return Outcome(ok, 1.0 if ok else 0.9)

    hooks = Hooks(probe=lambda plan, idx: ref[idx], check=check)
    res = Search(
        hooks,
        ref,
        sorted(errors),
        settings=[{"method": "minmax"}, {"method": "percentile"}, {"method": "entropy"}],
    ).run(check(Plan()))
    assert res.converged and res.plan.layers == () and dict(res.plan.settings) == {"method": "percentile"}
    assert [s["method"] for s in res.settings_tried] == ["minmax", "percentile"]  # stopped at the first pass


def test_layers_follow_only_the_settings_the_scheme_allows():
    ref, errors = _world()
    base_hooks = _hooks(ref, errors, [])

    def check(plan: Plan) -> Outcome:
        got = base_hooks.check(plan)
        # 'full' is better with no layer changes, but does not hold the gate alone
        bonus = 0.01 if dict(plan.settings).get("bias_correction") == "full" else 0.0
        return Outcome(got.passed, got.value + bonus)

    hooks = Hooks(probe=base_hooks.probe, check=check)
    settings = [{"method": "minmax"}, {"method": "minmax", "bias_correction": "full"}]
    free = Search(hooks, ref, sorted(errors), settings=settings).run(check(Plan()))
    assert dict(free.plan.settings) == {"method": "minmax", "bias_correction": "full"}
    fast_only = lambda s: s.get("bias_correction") != "full"  # noqa: E731
    held = Search(hooks, ref, sorted(errors), settings=settings, layers_follow=fast_only).run(check(Plan()))
    # the better setting was tried, but the layer changes start from the recipe's own
    assert held.converged and held.plan.settings == () and held.plan.layers
    assert held.settings_tried[1]["layers_follow"] is False


def test_write_back_writes_the_searched_layers_and_settings(tmp_path):
    import yaml

    from tests.conftest import tiny_model
    from vopt.recipe.resolve import load_recipe
    from vopt.recipe.write_back import write_back

    path = tmp_path / "r.yaml"
    path.write_text(
        "# my recipe\n"
        + yaml.safe_dump(
            {"name": "w", "model": tiny_model("resnet"), "quantize": {"calibration": {"samples": 8}}}
        )
    )
    manifest = {
        "steps": [
            {
                "stage": "quantize",
                "report": {
                    "fallback": {"kept_float": ["/a/Conv"], "kept_int16": ["/b/Conv"]},
                    "search": {"changed_settings": {"method": "entropy", "bias_correction": "full"}},
                },
            }
        ]
    }
    said = write_back(load_recipe(path), manifest)
    assert said == (
        "quantize.exclude.nodes (+1 layer kept in float); quantize.options.int16_nodes "
        "(+1 layer with 16-bit activations); quantize.calibration.method = entropy; "
        "quantize.options.bias_correction = full"
    )
    q = yaml.safe_load(path.read_text())["quantize"]
    assert q["exclude"]["nodes"] == ["/a/Conv"]
    assert q["options"] == {"int16_nodes": ["/b/Conv"], "bias_correction": "full"}
    assert q["calibration"] == {"samples": 8, "method": "entropy"}
    assert path.read_text().startswith("# my recipe\n")


def _stage_search(
    tmp_path, scheme_name: str, options: dict, methods: list[str], family=None, host=None, target="cpu"
):
    """A StageSearch on a stand-in quantize step (a QuantizeSession): what it asks the scheme plugin, without
    running it."""
    from types import SimpleNamespace

    from vopt.quant.config import QuantizeConfig
    from vopt.quant.search import StageSearch
    from vopt.recipe.sections.quantize import CalibrationSection, CheckSection, ExcludeSection, SearchSection
    from vopt.registry import get_scheme

    cfg = QuantizeConfig(
        target=target,
        scheme=scheme_name,
        precision="int8",
        per_channel=True,
        activation_type="uint8",
        weight_type="int8",
        calibration=CalibrationSection(),
        exclude=ExcludeSection(),
        gates={"top1_agreement": ">=0.99"},
        auto_fallback=False,
        max_float_fraction=0.25,
        fallback_step=1,
        require_speedup=None,
        check=CheckSection(),
        options=options,
        preprocess={},
        input_shape=[1, 3, 8, 8],
        compile={},
        search=SearchSection(methods=methods),
        host=host or {},
    )
    scheme = get_scheme(scheme_name)(cfg, tmp_path, family)
    images = np.zeros((4, 3, 8, 8), np.float32)
    session = SimpleNamespace(
        cfg=cfg, scheme=scheme, calib=None, check_images=images, reference={"logits": np.zeros((4, 10))}
    )
    return StageSearch(session, tmp_path / "float.onnx", tmp_path / "int8", "top1_agreement")


def test_the_settings_tried_come_from_the_scheme_plugin(tmp_path):
    from vopt.quant.search import Plan

    nncf = _stage_search(tmp_path, "nncf", {}, ["minmax", "percentile"])
    assert nncf.images is nncf.session.check_images  # the quantize check's own (held-out) images
    assert nncf.settings() == [
        {"method": "minmax"},
        {"method": "minmax", "bias_correction": "full"},  # NncfScheme.search_settings
        {"method": "minmax", "overflow_fix": "enable"},  # NNCF's default here (VNNI) is first_layer
        {"method": "minmax", "overflow_fix": "disable"},
        {"method": "percentile"},
    ]
    # on a CPU whose int8 kernels saturate, the default is overflow_fix enable: only the other one is tried
    saturating = _stage_search(tmp_path, "nncf", {}, ["minmax"], host={"int8_saturates": True})
    assert [s.get("overflow_fix") for s in saturating.settings()] == [None, None, "disable"]
    plan = Plan((("bias_correction", "full"), ("method", "minmax")))
    assert nncf.changed(plan) == {"bias_correction": "full"}
    # the recipe already asks for full bias correction: nothing else to try
    full = _stage_search(tmp_path, "nncf", {"bias_correction": "full", "overflow_fix": "enable"}, ["minmax"])
    assert full.settings() == [{"method": "minmax"}, {"method": "minmax", "overflow_fix": "disable"}]
    # a transformer family also gets SmoothQuant's alpha tried (NNCF has that step for transformers only)
    from vopt.models.families import get_family

    options = {"bias_correction": "full", "overflow_fix": "disable"}
    vit = _stage_search(tmp_path, "nncf", options, ["minmax"], get_family("vit"))
    assert vit.settings() == [
        {"method": "minmax"},
        {"method": "minmax", "smooth_quant": 0.5},
        {"method": "minmax", "overflow_fix": "enable"},
    ]
    # ort-qdq tries uint8 GEMM weights where the build does not give them already (a CPU with VNNI)
    ort = _stage_search(tmp_path, "ort-qdq", {}, ["entropy", "minmax"])
    assert ort.settings() == [
        {"method": "minmax"},
        {"method": "minmax", "u8_weights": True},
        {"method": "entropy"},
    ]
    saturating = _stage_search(tmp_path, "ort-qdq", {}, ["minmax"], host={"int8_saturates": True})
    assert saturating.settings() == [{"method": "minmax"}]
    assert ort.changed(Plan((("method", "entropy"),))) == {"method": "entropy"}


def test_ort_qdq_weights_on_openvino_follow_its_cpu_plugin(tmp_path):
    """OpenVINO's CPU plugin saturates u8 x s8 like ONNX Runtime without VNNI, and has no uint8-weight kernel
    (it runs such convs in f32): an ORT QDQ file for openvino gets 7-bit GEMM weights on such a CPU, never
    uint8 ones. Measured on EfficientNet-Lite0: 8-bit weights lost 5.7 points top-1 on OpenVINO, uint8 ones
    ran 33 of 49 convs in f32 at 0.53x the speed (docs/benchmarks.md)."""

    def scheme(target: str, saturates: bool, options: dict | None = None):
        host = {"int8_saturates": saturates}
        return _stage_search(tmp_path, "ort-qdq", options or {}, ["minmax"], host=host, target=target).scheme

    for target in ("cpu", "openvino"):
        assert scheme(target, False).reduce_range() is False and scheme(target, False).u8_weights() is False
    assert scheme("cpu", True).u8_weights() is True and scheme("cpu", True).reduce_range() is False
    assert scheme("openvino", True).u8_weights() is False and scheme("openvino", True).reduce_range() is True
    assert scheme("openvino", True, {"u8_weights": True}).u8_weights() is True  # a recipe may still ask
    # the search tries uint8 weights only where ORT's U8U8 kernels run them
    assert _stage_search(tmp_path, "ort-qdq", {}, ["minmax"], target="openvino").settings() == [
        {"method": "minmax"}
    ]


def test_int16_layers_are_a_recipe_error_where_the_scheme_has_none(tmp_path):
    import pytest
    import yaml

    from tests.conftest import tiny_model
    from vopt.errors import RecipeError
    from vopt.recipe.resolve import load_recipe

    def recipe(scheme: str):
        path = tmp_path / f"{scheme}.yaml"
        q = {"scheme": scheme, "gates": {"top1_agreement": ">=0.99"}, "search": {"to": ["float", "int16"]}}
        path.write_text(yaml.safe_dump({"name": "i", "model": tiny_model("resnet"), "quantize": q}))
        return path

    load_recipe(recipe("ort-qdq"))  # ort-qdq and qnn-qdq fall back to int16
    load_recipe(recipe("qnn-qdq"))
    with pytest.raises(RecipeError) as info:
        load_recipe(recipe("nncf"))
    text = "\n".join(info.value.lines or [info.value.message])
    assert "quantize.search.to: int16 is not available for scheme 'nncf'" in text, text


def _bridge_world():
    """L3 and L6 carry the error; the layers between them (L4, L5) almost none."""
    ref, errors = _world()
    errors["L6"], errors["L7"] = errors["L7"], errors["L6"]
    return ref, errors


def _bridged_run(speed, bridge=2, max_changes=None):
    ref, errors = _bridge_world()
    hooks = _hooks(ref, errors, [])
    timed: list[tuple[Plan, Plan]] = []
    if speed is not None:

        def hook(a: Plan, b: Plan) -> float:
            timed.append((a, b))
            return speed

        hooks.speed = hook
    base = hooks.check(Plan())
    res = Search(hooks, ref, sorted(errors, key=lambda n: int(n[1:])), bridge=bridge, max_changes=max_changes)
    return res.run(base), timed


def test_bridge_fills_the_gap_between_two_changed_layers_when_it_costs_no_speed():
    res, timed = _bridged_run(speed=1.01)
    assert res.converged
    assert sorted(res.plan.nodes("float"), key=lambda n: int(n[1:])) == ["L3", "L4", "L5", "L6"]
    assert res.bridge == {
        "gap": 2,
        "added": ["L4", "L5"],
        "value": res.outcome.value,
        "passed": True,
        "speed_vs_fewest": 1.01,
        "kept": True,
    }
    # timed once: the fewest changes against the bridged plan
    ((a, b),) = timed
    assert set(a.nodes("float")) == {"L3", "L6"} and set(b.nodes("float")) == {"L3", "L4", "L5", "L6"}
    assert any(t["why"] == "bridge" for t in res.trials)


def test_bridge_keeps_the_fewest_changes_when_the_bridged_plan_is_slower_or_untimed():
    slow, _ = _bridged_run(speed=0.9)
    assert set(slow.plan.nodes("float")) == {"L3", "L6"}
    assert slow.bridge["kept"] is False and slow.bridge["why"] == "slower: 0.900x the fewest changes"
    untimed, _ = _bridged_run(speed=None)
    assert set(untimed.plan.nodes("float")) == {"L3", "L6"} and untimed.bridge["why"] == "could not be timed"
    narrow, timed = _bridged_run(speed=1.0, bridge=1)  # the gap is 2 layers: nothing to bridge
    assert set(narrow.plan.nodes("float")) == {"L3", "L6"} and not timed
    assert narrow.bridge["why"] == "no gap to bridge"
    capped, _ = _bridged_run(speed=1.0, max_changes=3)
    assert set(capped.plan.nodes("float")) == {"L3", "L6"}
    assert capped.bridge["why"] == "no gap to bridge within max_float_fraction"
    assert capped.bridge["gaps_left_out"] == "1 (over max_float_fraction)"


def test_bridge_fills_the_shortest_gaps_that_fit_the_allowance():
    ref, errors = _world()
    errors["L5"], errors["L9"] = errors["L7"] * 0.8, errors["L7"]
    errors["L7"] = errors["L0"]  # L3, L5 and L9 carry the error: gaps of 1 (L4) and 3 (L6 to L8)
    hooks = _hooks(ref, errors, [])
    hooks.speed = lambda a, b: 1.0
    order = sorted(errors, key=lambda n: int(n[1:]))
    res = Search(hooks, ref, order, bridge=3, max_changes=4).run(hooks.check(Plan()))
    assert set(res.plan.nodes("float")) == {"L3", "L4", "L5", "L9"}
    assert res.bridge["added"] == ["L4"] and res.bridge["gaps_left_out"] == "1 (over max_float_fraction)"


def _clocked_bridge_run(budget_s: float):
    """The bridge world with a clock that moves 10 s per check."""
    ref, errors = _bridge_world()
    hooks = _hooks(ref, errors, [])
    now = [0.0]
    check = hooks.check

    def slow_check(plan: Plan) -> Outcome:
        now[0] += 10
        return check(plan)

    hooks.check, hooks.speed = slow_check, lambda a, b: 1.0
    order = sorted(errors, key=lambda n: int(n[1:]))
    search = Search(hooks, ref, order, bridge=2, budget_s=budget_s, clock=lambda: now[0])
    return search.run(check(Plan())), now[0]


def test_pruning_leaves_the_bridge_its_time_and_a_skipped_bridge_says_why():
    unhurried, spent = _clocked_bridge_run(1000)
    assert [t["why"] for t in unhurried.trials] == ["prefix", "prefix", "prune", "prune", "bridge"]
    assert spent == 50 and not unhurried.budget_exhausted
    # 40 s: two prefix checks leave 20 s, the reserve (twice the slowest check), so pruning stops and the
    # bridge runs inside the budget (pruning first would have spent it all)
    hurried, spent = _clocked_bridge_run(40)
    assert [t["why"] for t in hurried.trials] == ["prefix", "prefix", "bridge"]
    assert spent <= 40 and hurried.budget_exhausted and hurried.bridge["kept"] is True
    assert set(hurried.plan.nodes("float")) == {"L3", "L4", "L5", "L6"}
    late, _ = _clocked_bridge_run(15)  # the budget is gone once the gate holds
    assert late.converged and late.bridge == {"gap": 2, "kept": False, "why": "the budget ran out first"}
    failing, _ = _clocked_bridge_run(5)  # no time for a passing plan
    assert not failing.converged
    assert failing.bridge == {"gap": 2, "kept": False, "why": "no plan held the gate"}
