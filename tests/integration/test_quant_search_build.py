"""quantize.search through `vopt build`: the stage's hook, its report and --write-back (tiny random
ResNet)."""

from __future__ import annotations

import importlib.util
import json

import onnx
import yaml

from tests.conftest import tiny_model


def test_search_holds_the_gate_reports_and_writes_back(write_recipe, cli, tmp_path):
    # plain int8 measured centered cosine 0.9902 on this model's check images: the gate needs layers in float
    q = {
        "calibration": {"samples": 32},
        "gates": {"centered_cosine": ">=0.9975"},
        "max_float_fraction": 1.0,
        "check": {"samples": 16, "rounds": 2},
        "search": {"methods": ["minmax"], "budget_s": 300, "focus_images": 8},
    }
    recipe = write_recipe(
        {"name": "s", "model": tiny_model("resnet"), "quantize": q, "compile": {"target": "cpu"}}
    )
    res = cli("build", recipe, "--out", tmp_path / "out", "--json", "--write-back")
    assert res.exit_code == 0, res.output
    m = json.loads(res.stdout)
    rep = next(s for s in m["steps"] if s["stage"] == "quantize")["report"]
    s = rep["search"]
    assert s["converged"] and s["value_before"] < 0.9975 <= s["value_after"]
    assert rep["gates"][0]["passed"] and round(rep["gates"][0]["value"], 6) == s["value_after"]
    kept = rep["fallback"]["kept_float"]
    assert kept and s["changes"] == len(kept) and len(kept) < rep["fallback"]["quantized_layers"]
    assert {"node", "to", "kl_gain", "flips_fixed", "rank"} <= set(rep["sensitivity"][0])
    assert s["speed_vs_all_int8"]["status"] == "ok" and s["speed_vs_all_int8"]["ratio"] > 0
    assert any(t["why"] == "prefix" for t in s["trials"])
    # measured on the check's held-out images: the calibration folder's other part, never its own images
    data = rep["data"]
    assert data["split"] and data["check_images"] and data["calibration_images"]
    assert not {d["sha256"] for d in data["check_images"]} & {d["sha256"] for d in data["calibration_images"]}
    assert s["check_images"] == rep["check"]["images"]
    # the artifact is the searched one: its float islands are the search's layers
    model = onnx.load(str(tmp_path / "out" / "s" / "model.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["vopt.quantize.float_nodes"]) == sorted(kept)
    written = yaml.safe_load(recipe.read_text())["quantize"]["exclude"]["nodes"]
    assert written == kept
    assert "written by vopt build --write-back (quantize.search)" in recipe.read_text()


def test_search_bridge_is_checked_timed_and_reported(write_recipe, cli, tmp_path):
    # the first test's gate; a bridge wider than the model, and no speed check of its own: the bridge is
    # timed anyway, since the recipe asked for it
    q = {
        "calibration": {"samples": 32},
        "gates": {"centered_cosine": ">=0.9975"},
        "max_float_fraction": 1.0,
        "check": {"samples": 16, "rounds": 2, "benchmark": False},
        "search": {"methods": ["minmax"], "budget_s": 300, "focus_images": 8, "bridge": 100},
    }
    recipe = write_recipe(
        {"name": "b", "model": tiny_model("resnet"), "quantize": q, "compile": {"target": "cpu"}}
    )
    res = cli("build", recipe, "--out", tmp_path / "out", "--json")
    assert res.exit_code == 0, res.output
    rep = next(s for s in json.loads(res.stdout)["steps"] if s["stage"] == "quantize")["report"]
    s, bridge = rep["search"], rep["search"]["bridge"]
    assert s["converged"] and bridge["gap"] == 100
    kept = set(rep["fallback"]["kept_float"])
    assert bridge["added"], bridge  # this model's fewest changes leave gaps between float layers
    assert bridge["passed"] and bridge["speed_vs_fewest"] > 0  # checked, then timed
    bridged = any(t["why"] == "bridge" for t in s["trials"])
    assert bridged and bridge["kept"] == (bridge["speed_vs_fewest"] >= 0.97)
    assert set(bridge["added"]) <= kept if bridge["kept"] else not set(bridge["added"]) & kept
    model = onnx.load(str(tmp_path / "out" / "b" / "model.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(json.loads(meta["vopt.quantize.float_nodes"])) == kept


def test_search_that_cannot_hold_its_gate_exits_3_naming_it(write_recipe, cli, tmp_path):
    # no layer may go to float, and no range method gets plain int8 this close to fp32
    q = {
        "calibration": {"samples": 16},
        "gates": {"centered_cosine": ">=0.99999"},
        "max_float_fraction": 0.0,
        "check": {"samples": 8, "benchmark": False},
        "search": {"methods": ["minmax"], "budget_s": 120, "focus_images": 4},
    }
    recipe = write_recipe(
        {"name": "f", "model": tiny_model("resnet"), "quantize": q, "compile": {"target": "cpu"}}
    )
    res = cli("build", recipe, "--out", tmp_path / "out")
    assert res.exit_code == 3, res.output
    assert "centered_cosine = 0." in res.output and "needs >=0.99999 (quantize)" in res.output
    assert "quantize.search did not hold the gate (0 of at most 0 layer changes" in res.output
    m = json.loads((tmp_path / "out" / "f" / "manifest.json").read_text())
    assert m["status"] == "gate_failed" and m["gate_failures"][0]["metric"] == "centered_cosine"


def _openvino_recipe(write_recipe, name: str, q: dict):
    """The tiny ResNet to `openvino` with these quantize settings; skips where nncf cannot run."""
    import pytest

    from vopt.registry import get_scheme

    if not all(importlib.util.find_spec(m) for m, _, _ in get_scheme("nncf").requires):
        pytest.skip("nncf needs openvino and nncf, not installed here")
    return write_recipe(
        {"name": name, "model": tiny_model("resnet"), "quantize": q, "compile": {"target": "openvino"}}
    )


def test_search_on_nncf_tries_its_scheme_settings_first(write_recipe, cli, tmp_path):
    # measured on this model's check images: plain int8 0.9879, with full bias correction 0.9951
    q = {
        "calibration": {"samples": 16},
        "gates": {"centered_cosine": ">=0.995"},
        "max_float_fraction": 1.0,
        "check": {"samples": 16, "benchmark": False},
        "search": {"methods": ["minmax"], "budget_s": 300, "focus_images": 8},
        # NNCF's default overflow fix on every machine (the figures above were measured with it)
        "options": {"overflow_fix": "first_layer"},
    }
    recipe = _openvino_recipe(write_recipe, "n", q)
    res = cli("build", recipe, "--out", tmp_path / "out", "--json", "--write-back")
    assert res.exit_code == 0, res.output
    rep = next(s for s in json.loads(res.stdout)["steps"] if s["stage"] == "quantize")["report"]
    s = rep["search"]
    assert s["converged"] and s["value_before"] < 0.995 <= s["value_after"]
    # NncfScheme.search_settings: full bias correction, tried first after the recipe's own settings, held the
    # gate with no layer changes
    assert [t.get("bias_correction") for t in s["settings_tried"]] == [None, "full"]
    assert s["changed_settings"] == {"bias_correction": "full"} and s["changes"] == 0
    assert "full bias correction" in rep["scheme_info"]["calibration_method"]
    # the layers it could have changed come from the ORT QDQ proxy (NNCF's IR has no Q/DQ per layer)
    assert "ORT QDQ proxy" in rep["scheme_info"]["ranking"] and rep["fallback"]["quantized_layers"] > 0
    assert yaml.safe_load(recipe.read_text())["quantize"]["options"] == {
        "overflow_fix": "first_layer",
        "bias_correction": "full",
    }
    assert (
        'bias_correction: "full"  # written by vopt build --write-back (quantize.search)'
        in recipe.read_text()
    )


def test_search_on_nncf_reverts_layers_and_write_back_rebuilds_the_same_bytes(write_recipe, cli, tmp_path):
    # measured on this model's check images: plain int8 0.9879; no scheme settings, so layers must go to float
    q = {
        "calibration": {"samples": 16},
        "gates": {"centered_cosine": ">=0.992"},
        "max_float_fraction": 1.0,
        "check": {"samples": 16, "benchmark": False},
        "search": {"methods": ["minmax"], "budget_s": 300, "focus_images": 8, "scheme_settings": False},
        "options": {"overflow_fix": "first_layer"},
    }
    recipe = _openvino_recipe(write_recipe, "r", q)
    res = cli("build", recipe, "--out", tmp_path / "out", "--json", "--write-back")
    assert res.exit_code == 0, res.output
    step = next(s for s in json.loads(res.stdout)["steps"] if s["stage"] == "quantize")
    rep = step["report"]
    s, info = rep["search"], rep["scheme_info"]
    assert s["converged"] and s["value_before"] < 0.992 <= s["value_after"] and s["changes"] > 0
    # every searched layer was reverted on the one quantized model: its ops lost their FakeQuantize inputs
    reverted = info["reverted_ops"]
    assert all(any(op == x["node"] or op.startswith(x["node"] + "/") for op in reverted) for x in s["layers"])
    assert "reverted on one quantized model" in info["float_layers"]
    import openvino as ov

    graph = ov.Core().read_model(str(tmp_path / "out" / "r" / "openvino_model" / "model.xml"))
    fed_by_fq = {
        op.get_friendly_name()
        for op in graph.get_ops()
        for inp in op.inputs()
        if inp.get_source_output().get_node().get_type_name() == "FakeQuantize"
    }
    assert reverted and not set(reverted) & fed_by_fq and fed_by_fq  # the rest stays int8
    # the written-back names rebuild the same artifact, with no search
    written = yaml.safe_load(recipe.read_text())["quantize"]["exclude"]["nodes"]
    assert sorted(written) == sorted(x["node"] for x in s["layers"])
    again = cli("build", recipe, "--out", tmp_path / "out2", "--json")
    assert again.exit_code == 0, again.output
    step2 = next(x for x in json.loads(again.stdout)["steps"] if x["stage"] == "quantize")
    assert "search" not in step2["report"] and step2["report"]["gates"][0]["passed"]
    # the same weights and graph; OpenVINO numbers its auto-named ops per process ('Constant_273163')
    import re

    first, second = (tmp_path / d / "r" / "openvino_model" for d in ("out", "out2"))
    assert (first / "model.bin").read_bytes() == (second / "model.bin").read_bytes()
    xml = [re.sub(r'_\d+"', '_N"', (d / "model.xml").read_text()) for d in (first, second)]
    assert xml[0] == xml[1]
